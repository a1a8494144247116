"""Reading a target folder into example texts.

Benchmarks name their fields differently (question/answer, ctx/endings, input/target),
so a folder may hold a ``target.yaml`` with a ``template`` such as
``"{question} {answer}"``. Without one, a ``text`` field is used if present, else the
example's string fields joined in their file order.

``target.yaml`` keys: ``template`` (str.format fields), ``files`` (glob patterns,
default: every Parquet/JSONL/JSON file), ``limit`` (keep the first N examples).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from nag_core.errors import NagInputError
from nag_core.hashing import files_digest
from nag_core.home import TARGET_SUFFIXES

SPEC_FILE = "target.yaml"


@dataclass(frozen=True)
class TargetSpec:
    template: str | None = None
    files: tuple[str, ...] = ()
    limit: int | None = None


def read_spec(folder: Path) -> TargetSpec:
    path = folder / SPEC_FILE
    if not path.exists():
        return TargetSpec()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise NagInputError(f"{path}: not valid YAML ({exc})") from exc
    unknown = sorted(set(raw) - {"template", "files", "limit"}) if isinstance(raw, dict) else ["<not a mapping>"]
    if unknown:
        raise NagInputError(f"{path}: unknown key(s) {unknown}; allowed: template, files, limit")
    files = raw.get("files") or ()
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise NagInputError(f"{path}: 'limit' must be a positive integer, got {limit!r}")
    return TargetSpec(template=raw.get("template"), files=tuple([files] if isinstance(files, str) else files), limit=limit)


def target_files(folder: Path, spec: TargetSpec | None = None) -> list[Path]:
    spec = spec or read_spec(folder)
    if spec.files:
        found = sorted({p for pattern in spec.files for p in folder.glob(pattern) if p.is_file()})
    else:
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TARGET_SUFFIXES))
    if not found:
        raise NagInputError(f"{folder}: no example files. Add Parquet, JSONL or JSON files (or fix 'files' in {SPEC_FILE}).")
    return found


def target_fingerprint(folder: Path) -> str:
    """Changes when any example file or the spec changes."""
    spec_path = folder / SPEC_FILE
    paths = target_files(folder) + ([spec_path] if spec_path.exists() else [])
    return files_digest(paths, folder)


def _records(path: Path) -> list[dict]:
    try:
        return _read_records(path)
    except UnicodeDecodeError as exc:
        raise NagInputError(f"{path}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8.") from None
    except (OSError, EOFError, pa.ArrowException) as exc:  # truncated gzip or Parquet, unreadable file
        raise NagInputError(f"{path}: cannot be read ({exc}); re-export the file.") from None


def _read_records(path: Path) -> list[dict]:
    if path.name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            out = []
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise NagInputError(f"{path}: line {n} is not valid JSON ({exc.msg})") from None
            return out
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise NagInputError(f"{path}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):  # e.g. BIG-Bench Hard: {"examples": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise NagInputError(f"{path}: a JSON object must hold exactly one list of examples")
        data = lists[0]
    if not isinstance(data, list):
        raise NagInputError(f"{path}: expected a JSON list of examples")
    return data


def _render(record: object, spec: TargetSpec, where: str) -> str:
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise NagInputError(f"{where}: example is a {type(record).__name__}, expected an object")
    if spec.template is not None:
        try:
            return spec.template.format(**record)
        except KeyError as exc:
            raise NagInputError(
                f"{where}: template field {exc} is not in the example (fields: {sorted(record)}). Fix 'template' in {SPEC_FILE}."
            ) from None
        except (IndexError, AttributeError, ValueError) as exc:
            raise NagInputError(f"{where}: template {spec.template!r} cannot be filled ({exc}). "
                                f"Use named fields such as {{question}} in {SPEC_FILE}.") from None
    if isinstance(record.get("text"), str):
        return record["text"]
    return " ".join(str(v) for v in record.values() if isinstance(v, str))


def read_target(folder: Path, target: str) -> pl.DataFrame:
    """Examples as ``example_id, target, source_file, text``; example ids are ``file:row``."""
    spec = read_spec(folder)
    rows = []
    for path in target_files(folder, spec):
        for i, record in enumerate(_records(path)):
            text = _render(record, spec, f"{path} example {i}")
            if text.strip():
                rows.append({"example_id": f"{path.name}:{i}", "target": target, "source_file": path.name, "text": text})
    if spec.limit is not None:
        rows = rows[: spec.limit]
    if not rows:
        raise NagInputError(f"{folder}: every example rendered to empty text; check the files and the template.")
    return pl.DataFrame(rows, schema={"example_id": pl.String, "target": pl.String, "source_file": pl.String, "text": pl.String})
