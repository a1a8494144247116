"""Reading pool shards into validated documents, with a reason for every rejected row.

A shard is Parquet or JSONL. Text comes from ``text`` (or ``doc``, as in the reference
NAG parquet). ``docid`` and ``token_num`` are optional. Every other column is payload
and travels with the document into the selected subset.

Rows are never dropped silently: a row with no text, text that is not UTF-8 or is over
``MAX_DOCUMENT_BYTES``, a repeated docid or a bad token count goes to the quarantine
frame with the reason.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.errors import NagInputError
from nag_core.hashing import text_digest

TEXT_COLUMNS = ("text", "doc")
# A document longer than this is quarantined: extraction reads only max_length tokens,
# but counting, hashing and dedup would read it whole, and such "documents" are nearly
# always concatenated dumps or binary data mislabelled as text.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
RESERVED = ("shard", "row_index", "text_hash")
TokenCounter = Callable[[Sequence[str]], list[int]]

QUARANTINE_SCHEMA = {
    "shard": pl.String,
    "row_index": pl.Int64,
    "docid": pl.String,
    "reason": pl.String,
    "text_preview": pl.String,
}


@dataclass
class ValidatedShard:
    documents: pl.DataFrame  # docid, shard, row_index, text, token_num, text_hash, payload...
    quarantine: pl.DataFrame  # shard, row_index, docid, reason, text_preview
    text_column: str
    renamed_payload: dict[str, str]


def _read_rows(path: Path) -> list[dict]:
    """Rows as dicts; undecodable bytes survive as surrogates so validation can name them."""
    if path.name.endswith(".parquet"):
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise NagInputError(f"{path}: cannot read as Parquet ({exc}). Re-export the shard.") from exc
        rows = table.to_pylist()
        for row in rows:
            for key, value in row.items():
                if isinstance(value, (bytes, bytearray)):
                    row[key] = bytes(value).decode("utf-8", errors="surrogateescape")
        return rows
    try:
        return _read_jsonl(path)
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise NagInputError(f"{path}: cannot be read ({exc}). Re-export the shard.") from None


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            line = raw.decode("utf-8", errors="surrogateescape")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise NagInputError(f"{path}: line {line_no} is not valid JSON ({exc.msg}). Fix or remove that line.") from None
            if not isinstance(obj, dict):
                raise NagInputError(f"{path}: line {line_no} is a JSON {type(obj).__name__}, expected an object with a 'text' field.")
            rows.append(obj)
    return rows


def _utf8_size(text: str) -> int | None:
    """Encoded size in bytes, or None when the text holds undecodable bytes (surrogates)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _preview(value: object) -> str:
    if not isinstance(value, str):
        return repr(value)[:120]
    return value.encode("utf-8", errors="replace").decode("utf-8")[:120]


def read_shard(path: Path, shard: str, count_tokens: TokenCounter | None = None) -> ValidatedShard:
    """Validate one shard. ``count_tokens`` fills ``token_num`` where the shard lacks it."""
    path = Path(path)
    rows = _read_rows(path)
    columns: list[str] = list(dict.fromkeys(k for row in rows for k in row)) if rows else []
    text_col = next((c for c in TEXT_COLUMNS if c in columns), None)
    if rows and text_col is None:
        raise NagInputError(
            f"{path}: no text column. Name the document text 'text' (or 'doc'); columns found: {columns}"
        )
    payload_cols = [c for c in columns if c not in (text_col, "docid", "token_num")]
    renamed = {c: f"orig_{c}" for c in payload_cols if c in RESERVED}

    kept: list[dict] = []
    quarantine: list[dict] = []
    seen: dict[str, int] = {}
    derived_count: dict[str, int] = {}

    def reject(i: int, docid: object, reason: str, text: object) -> None:
        quarantine.append({"shard": shard, "row_index": i, "docid": None if docid is None else str(docid),
                           "reason": reason, "text_preview": _preview(text)})

    for i, row in enumerate(rows):
        text = row.get(text_col)
        docid = row.get("docid")
        if text is None or (isinstance(text, str) and not text.strip()):
            reject(i, docid, f"empty or missing '{text_col}'", text)
            continue
        if not isinstance(text, str):
            reject(i, docid, f"'{text_col}' is a {type(text).__name__}, not a string", text)
            continue
        size = _utf8_size(text)
        if size is None:
            reject(i, docid, f"'{text_col}' is not valid UTF-8", text)
            continue
        if size > MAX_DOCUMENT_BYTES:
            reject(i, docid, f"'{text_col}' is {size:,} bytes, over the {MAX_DOCUMENT_BYTES:,}-byte limit "
                             "(MAX_DOCUMENT_BYTES); split the document", text)
            continue
        text_hash = text_digest(text)
        if docid is None or (isinstance(docid, str) and not docid.strip()):
            base = f"h{text_hash}"
            n = derived_count.get(base, 0) + 1
            derived_count[base] = n
            docid = base if n == 1 else f"{base}-{n}"
        else:
            docid = str(docid)
        if docid in seen:
            reject(i, docid, f"docid not unique in shard (first at row {seen[docid]})", text)
            continue
        token_num = row.get("token_num")
        if token_num is not None and (isinstance(token_num, bool) or not isinstance(token_num, (int, float))
                                      or token_num < 0 or token_num != int(token_num)):
            reject(i, docid, f"token_num {token_num!r} is not a non-negative integer", text)
            continue
        seen[docid] = i
        record = {"docid": docid, "shard": shard, "row_index": i, "text": text,
                  "token_num": None if token_num is None else int(token_num), "text_hash": text_hash}
        for c in payload_cols:
            record[renamed.get(c, c)] = row.get(c)
        kept.append(record)

    missing = [r for r in kept if r["token_num"] is None]
    if missing:
        if count_tokens is None:
            raise NagInputError(f"{path}: {len(missing)} rows have no token_num and no tokenizer was given to count them.")
        for record, n in zip(missing, count_tokens([r["text"] for r in missing]), strict=True):
            record["token_num"] = int(n)

    docs = _frame(kept, shard)
    quarantine_df = pl.DataFrame(quarantine, schema=QUARANTINE_SCHEMA)
    return ValidatedShard(docs, quarantine_df, text_col or "text", renamed)


def _frame(records: list[dict], shard: str) -> pl.DataFrame:
    base = {"docid": pl.String, "shard": pl.String, "row_index": pl.Int64, "text": pl.String,
            "token_num": pl.Int64, "text_hash": pl.String}
    if not records:
        return pl.DataFrame(schema=base)
    # Arrow infers payload types across all rows; polars then keeps them.
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise NagInputError(f"shard {shard!r}: a payload column mixes value types ({exc}). Make each column one type.") from exc
    return pl.DataFrame(table).with_columns([pl.col(c).cast(t) for c, t in base.items()])


def drop_foreign_docids(shard: ValidatedShard, foreign: dict[str, str]) -> ValidatedShard:
    """Quarantine documents whose docid already belongs to another shard (``docid -> shard``)."""
    if not foreign or shard.documents.is_empty():
        return shard
    docs = shard.documents
    clash = docs.filter(pl.col("docid").is_in(list(foreign)))
    if clash.is_empty():
        return shard
    extra = clash.select(
        "shard", "row_index", "docid",
        pl.col("docid").map_elements(lambda d: f"docid already used in shard {foreign[d]!r}", return_dtype=pl.String).alias("reason"),
        pl.col("text").str.slice(0, 120).alias("text_preview"),
    )
    return ValidatedShard(
        documents=docs.filter(~pl.col("docid").is_in(list(foreign))),
        quarantine=pl.concat([shard.quarantine, extra]).sort("row_index"),
        text_column=shard.text_column,
        renamed_payload=shard.renamed_payload,
    )
