"""Writing a selected subset and its audit trail, without reading the pool's text into memory.

A subset is four things, all written atomically:

* ``subsets/<name>.parquet``: the members with their text and payload, joined in DuckDB
  from the ``documents`` Parquet files and streamed to disk batch by batch, so memory
  holds one batch, not the pool (nor even the whole subset);
* ``manifests/<name>.json`` (also stamped into the Parquet schema metadata);
* warehouse rows in ``subsets`` and ``subset_members``;
* the decision trail: ``subset_decisions`` (one row per candidate and target: score,
  rank, outcome, the step that decided it) and, for recipes, ``subset_signal_values``
  (every signal value, normalised value and rank the recipe read). Each run also keeps
  a copy keyed by its run id in ``subset_history`` / ``subset_signal_history``, which is
  what ``nag-select diff`` compares.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.atomic import atomic_path, write_text
from nag_core.home import Home
from nag_core.storage import Location, register
from nag_core.warehouse import TABLES, Warehouse, partition_id

_BATCH_ROWS = 8192
DOCUMENT_BOOKKEEPING = ("row_index", "text_hash")


def document_files(home: Home, shards: Sequence[str] | None = None) -> list[str]:
    wh = Warehouse(home.root)
    parts = wh.partitions("documents") if shards is None else [s for s in shards if s in set(wh.partitions("documents"))]
    return [str(wh.table_dir("documents") / f"{p}.parquet") for p in parts]


def lookup_documents(home: Home, docids: Sequence[str], columns: Sequence[str] | None = None,
                     shards: Sequence[str] | None = None) -> pl.DataFrame:
    """Rows of ``documents`` for just these docids (DuckDB semi-join over the Parquet files)."""
    files = document_files(home, shards)
    if not files or not docids:
        return pl.DataFrame(schema={"docid": pl.String, **{c: pl.String for c in (columns or ()) if c != "docid"}})
    con = register(duckdb.connect(), home.outputs)
    try:
        con.register("wanted", pl.DataFrame({"docid": list(docids)}, schema={"docid": pl.String}))
        select = "*" if columns is None else ", ".join(f'"{c}"' for c in dict.fromkeys(["docid", *columns]))
        return con.sql(f"SELECT {select} FROM read_parquet($files, union_by_name=true) "
                       "WHERE docid IN (SELECT docid FROM wanted)", params={"files": files}).pl()
    finally:
        con.close()


def write_subset_parquet(home: Home, members: pl.DataFrame, path: Location, manifest_json: str, order_by: str) -> Location:
    """members + text and payload, in ``order_by`` order, streamed from a DuckDB join into one Parquet file."""
    files = document_files(home, sorted(set(members["shard"].drop_nulls().to_list())) if "shard" in members.columns else None)
    con = register(duckdb.connect(), home.outputs)
    try:
        con.register("members", members)
        if files:
            exclude = ", ".join(f'"{c}"' for c in ("docid", "token_num", *DOCUMENT_BOOKKEEPING,
                                                   *(["shard"] if "shard" in members.columns else [])))
            sql = (f"SELECT m.*, d.* EXCLUDE ({exclude}) FROM members m LEFT JOIN "
                   f"read_parquet($files, union_by_name=true) d USING (docid) ORDER BY {order_by}")
            reader = con.sql(sql, params={"files": files}).to_arrow_reader(_BATCH_ROWS)
        else:
            reader = con.sql(f"SELECT * FROM members m ORDER BY {order_by}").to_arrow_reader(_BATCH_ROWS)
        schema = reader.schema.with_metadata({b"nag_manifest": manifest_json.encode()})
        with atomic_path(path) as tmp:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    finally:
        con.close()
    return path


def write_subset(home: Home, manifest: dict, members: pl.DataFrame, order_by: str) -> None:
    """Subset Parquet, manifest and the ``subsets`` / ``subset_members`` rows. ``members`` has docid, target, rank, score,
    token_num, shard."""
    wh = Warehouse(home.root)
    name = manifest["subset"]
    manifest_json = json.dumps(manifest, indent=2, sort_keys=True)
    parquet_path = write_subset_parquet(home, members, home.subset_path(name), manifest_json, order_by)
    manifest_path = write_text(manifest_json, home.manifest_path(name))
    wh.write("subsets", name, pl.DataFrame([{
        "subset": name, "kind": manifest["kind"], "targets": ",".join(manifest["targets"]), "model": manifest["model"],
        "budget_fraction": manifest["recipe"]["budget_fraction"], "pool_tokens": manifest["pool_tokens"],
        "budget_tokens": manifest["budget_tokens"], "selected_tokens": manifest["selected_tokens"],
        "documents": manifest["documents"], "config_hash": manifest["config_hash"], "run_id": manifest["run_id"],
        "parquet_path": str(parquet_path), "manifest_path": str(manifest_path), "created_at": manifest["created_at"]}]))
    wh.write("subset_members", name, members.with_columns(pl.lit(name).alias("subset")).select(
        "subset", "docid", "target", "rank", "score", "token_num", "shard"))


def _typed(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    types = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "DOUBLE": pl.Float64, "BOOLEAN": pl.Boolean}
    cols = TABLES[table]
    return frame.select([pl.col(c).cast(types[t]) if c in frame.columns else pl.lit(None, types[t]).alias(c)
                         for c, t in cols.items()])


def write_decisions(home: Home, subset: str, run_id: str, decisions: pl.DataFrame,
                    signal_values: pl.DataFrame | None = None) -> None:
    """The current decision trail of a subset, plus a copy kept under this run's id for diffs."""
    wh = Warehouse(home.root)
    stamp = [pl.lit(subset).alias("subset"), pl.lit(run_id).alias("run_id")]
    # Microseconds: two runs within one second must still sort in the order they ran (diff's default).
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    rows = decisions.with_columns(*stamp, pl.lit(created).alias("created_at"))
    for table in ("subset_decisions", "subset_history"):
        wh.write(table, subset if table == "subset_decisions" else partition_id(subset, run_id),
                 _typed(rows, "subset_decisions"))
    if signal_values is not None:
        values = signal_values.with_columns(*stamp)
        for table in ("subset_signal_values", "subset_signal_history"):
            wh.write(table, subset if table == "subset_signal_values" else partition_id(subset, run_id),
                     _typed(values, "subset_signal_values"))
