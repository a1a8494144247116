"""The warehouse: Parquet partitions on disk, presented as DuckDB views.

Why not write rows into ``warehouse.duckdb`` directly? DuckDB allows one writing
process per file, and a sensor-launched run may overlap ``nag-select run``. So every
asset writes its rows as one Parquet file per (table, partition), atomically renamed
into ``tables/<table>/<partition>.parquet``. A rerun replaces its own file whole, so
rows are never lost or duplicated, and no two writers ever touch the same file
concurrently unless they compute the same partition. ``warehouse.duckdb`` holds only
views over those files; it is opened for writing just long enough to (re)create the
views, with a retry if another process holds the lock.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from nag_core.atomic import sweep_temp_files, write_parquet, write_text
from nag_core.hashing import digest
from nag_core.home import output_root
from nag_core.storage import Location, is_local, read_parquet, register

# Columns every table has even while empty, so the views always exist and can be queried.
TABLES: dict[str, dict[str, str]] = {
    "documents": {"docid": "VARCHAR", "shard": "VARCHAR", "row_index": "BIGINT", "text": "VARCHAR",
                  "token_num": "BIGINT", "text_hash": "VARCHAR"},
    "quarantine": {"shard": "VARCHAR", "row_index": "BIGINT", "docid": "VARCHAR", "reason": "VARCHAR",
                   "text_preview": "VARCHAR"},
    "pool_kept": {"docid": "VARCHAR", "shard": "VARCHAR", "token_num": "BIGINT", "norm_hash": "VARCHAR"},
    "dedup_removed": {"removed_docid": "VARCHAR", "kept_docid": "VARCHAR", "cluster_id": "VARCHAR",
                      "cluster_size": "BIGINT", "est_jaccard": "DOUBLE", "verified_jaccard": "DOUBLE",
                      "stage": "VARCHAR", "rule": "VARCHAR", "settings_hash": "VARCHAR", "shard": "VARCHAR",
                      "matched_target": "VARCHAR", "matched_example": "VARCHAR"},
    "dedup_signatures": {"docid": "VARCHAR", "shard": "VARCHAR", "text_hash": "VARCHAR", "settings_hash": "VARCHAR"},
    "dedup_bands": {"docid": "VARCHAR", "band": "INTEGER", "bucket": "BIGINT", "settings_hash": "VARCHAR"},
    "dedup_settings": {"settings_hash": "VARCHAR", "normalizer": "VARCHAR", "near": "VARCHAR", "near_name": "VARCHAR",
                       "hashing_scheme": "VARCHAR", "near_threshold": "DOUBLE", "decontaminate": "BOOLEAN",
                       "signal_column": "VARCHAR"},
    "target_examples": {"example_id": "VARCHAR", "target": "VARCHAR", "source_file": "VARCHAR", "text": "VARCHAR"},
    "neuron_graphs": {"target": "VARCHAR", "model": "VARCHAR", "neuron_type": "VARCHAR", "layer": "INTEGER",
                      "neuron": "INTEGER", "count": "BIGINT", "weight": "DOUBLE", "config_hash": "VARCHAR",
                      "run_id": "VARCHAR"},
    "signals": {"docid": "VARCHAR", "shard": "VARCHAR", "signal": "VARCHAR", "target": "VARCHAR",
                "model": "VARCHAR", "value": "DOUBLE", "asset": "VARCHAR", "run_id": "VARCHAR",
                "config_hash": "VARCHAR", "code_version": "VARCHAR"},
    "subsets": {"subset": "VARCHAR", "kind": "VARCHAR", "targets": "VARCHAR", "model": "VARCHAR",
                "budget_fraction": "DOUBLE", "pool_tokens": "BIGINT", "budget_tokens": "BIGINT",
                "selected_tokens": "BIGINT", "documents": "BIGINT", "config_hash": "VARCHAR", "run_id": "VARCHAR",
                "parquet_path": "VARCHAR", "manifest_path": "VARCHAR", "created_at": "VARCHAR"},
    "subset_members": {"subset": "VARCHAR", "docid": "VARCHAR", "target": "VARCHAR", "rank": "BIGINT",
                       "score": "DOUBLE", "token_num": "BIGINT", "shard": "VARCHAR"},
    "neuron_counts": {"model": "VARCHAR", "shard": "VARCHAR", "neuron_type": "VARCHAR", "layer": "INTEGER",
                      "neuron": "INTEGER", "count": "BIGINT"},
    "subset_decisions": {"subset": "VARCHAR", "run_id": "VARCHAR", "docid": "VARCHAR", "target": "VARCHAR",
                         "score": "DOUBLE", "rank": "BIGINT", "outcome": "VARCHAR", "step": "BIGINT", "pick": "BIGINT",
                         "credited": "BOOLEAN", "created_at": "VARCHAR"},
    "subset_history": {"subset": "VARCHAR", "run_id": "VARCHAR", "docid": "VARCHAR", "target": "VARCHAR",
                       "score": "DOUBLE", "rank": "BIGINT", "outcome": "VARCHAR", "step": "BIGINT", "pick": "BIGINT",
                       "credited": "BOOLEAN", "created_at": "VARCHAR"},
    "subset_signal_values": {"subset": "VARCHAR", "run_id": "VARCHAR", "docid": "VARCHAR", "target": "VARCHAR",
                             "signal": "VARCHAR", "value": "DOUBLE", "norm": "DOUBLE", "rank": "DOUBLE", "weight": "DOUBLE"},
    "subset_signal_history": {"subset": "VARCHAR", "run_id": "VARCHAR", "docid": "VARCHAR", "target": "VARCHAR",
                              "signal": "VARCHAR", "value": "DOUBLE", "norm": "DOUBLE", "rank": "DOUBLE", "weight": "DOUBLE"},
    "materializations": {"asset": "VARCHAR", "partition": "VARCHAR", "fingerprint": "VARCHAR",
                         "data_version": "VARCHAR", "run_id": "VARCHAR", "created_at": "VARCHAR"},
}

VIEWS = {
    "dedup_removals_by_shard": "SELECT shard, stage, count(*) AS removed FROM dedup_removed GROUP BY ALL ORDER BY ALL",
    # Every decision of every subset's latest run, with each signal value the recipe read for it.
    "subset_audit": "SELECT d.subset, d.run_id, d.docid, d.target, d.score, d.rank, d.outcome, d.step, d.pick, "
                    "v.signal, v.value AS signal_value, v.norm AS signal_norm, v.rank AS signal_rank, v.weight "
                    "FROM subset_decisions d LEFT JOIN subset_signal_values v ON v.subset = d.subset "
                    "AND v.docid = d.docid AND (v.target = d.target OR v.target = '*')",
    "subset_runs": "SELECT subset, run_id, min(created_at) AS created_at, "
                   "count(DISTINCT docid) FILTER (outcome = 'selected') AS selected "
                   "FROM subset_history GROUP BY ALL ORDER BY subset, created_at",
    # Which asset run, settings and code produced each signal now in the warehouse.
    "signal_provenance": "SELECT signal, asset, model, target, run_id, config_hash, code_version, count(*) AS documents "
                         "FROM signals GROUP BY ALL ORDER BY ALL",
}
# subset_diff('name', 'run_a', 'run_b'): documents whose selection changed between two runs.
MACROS = {
    "subset_diff": "(s, run_from, run_to) AS TABLE "
                   "WITH h AS (SELECT * FROM subset_history WHERE subset = s AND run_id IN (run_from, run_to)), "
                   "per_doc AS (SELECT run_id, docid, bool_or(outcome = 'selected') AS selected, min(rank) AS rank, "
                   "max(score) AS score FROM h GROUP BY ALL), "
                   "a AS (SELECT * FROM per_doc WHERE run_id = run_from), b AS (SELECT * FROM per_doc WHERE run_id = run_to) "
                   "SELECT coalesce(a.docid, b.docid) AS docid, "
                   "CASE WHEN coalesce(b.selected, false) THEN 'added' ELSE 'removed' END AS change, "
                   "a.rank AS rank_from, b.rank AS rank_to, a.score AS score_from, b.score AS score_to "
                   "FROM a FULL JOIN b ON a.docid = b.docid "
                   "WHERE coalesce(a.selected, false) <> coalesce(b.selected, false) ORDER BY change, docid",
}


# DuckDB's buffer pool keeps freed Parquet read buffers up to its memory limit (80% of RAM
# by default), so a scan over many files grew with their number. Scratch connections
# (lookups, compaction) get a fixed limit and spill past it to a temporary directory.
SCRATCH_MEMORY_LIMIT = "256MB"


@contextlib.contextmanager
def scratch_duckdb(*reads: Location) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with bounded memory that can read the ``reads`` locations.

    It takes no lock on ``warehouse.duckdb``.
    """
    with tempfile.TemporaryDirectory(prefix="nag-duckdb-") as spill:
        con = duckdb.connect(config={"memory_limit": SCRATCH_MEMORY_LIMIT, "temp_directory": spill})
        try:
            yield register(con, *reads)
        finally:
            con.close()


def partition_id(*parts: str) -> str:
    """File name for a multi-dimensional partition; '@' never appears in a checked name."""
    return "@".join(parts)


@dataclass(frozen=True)
class Warehouse:
    root: Path  # NAG_HOME

    @property
    def db_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def outputs(self) -> Location:
        """Where ``tables/`` lives: the data root, or ``storage.url`` (``nag_core.storage``)."""
        return output_root(self.root)

    def table_dir(self, table: str) -> Location:
        if table not in TABLES:
            raise KeyError(f"unknown warehouse table {table!r}")
        return self.outputs / "tables" / table

    def write(self, table: str, partition: str, frame: pl.DataFrame) -> Location:
        """Replace one partition of a table atomically."""
        return write_parquet(frame.to_arrow(), self.table_dir(table) / f"{partition}.parquet")

    def delete(self, table: str, partition: str) -> None:
        (self.table_dir(table) / f"{partition}.parquet").unlink(missing_ok=True)

    def partitions(self, table: str) -> list[str]:
        d = self.table_dir(table)
        return sorted(p.name[: -len(".parquet")] for p in d.glob("*.parquet")) if d.is_dir() else []

    def read(self, table: str, partitions: list[str] | None = None, columns: list[str] | None = None,
             exclude: str | None = None, where: list[tuple] | None = None) -> pl.DataFrame:
        """Rows of a table (some partitions, or all but ``exclude``; those passing ``where``, pyarrow filters),
        read from Parquet without DuckDB."""
        wanted = self.partitions(table) if partitions is None else partitions
        files = [self.table_dir(table) / f"{p}.parquet" for p in wanted if p != exclude]
        frames = [frame for f in files if (frame := _read_if_present(f, columns, where)) is not None]
        if not frames:
            schema = {c: _POLARS[t] for c, t in TABLES[table].items() if columns is None or c in columns}
            return pl.DataFrame(schema=schema)
        return pl.concat(frames, how="diagonal_relaxed")

    @property
    def views_stamp_path(self) -> Path:
        return self.root / "warehouse.views"

    def refresh_views(self, timeout_s: float = 60.0) -> None:
        """(Re)create one view per table over its Parquet files, only when a definition changed.

        A view reads its glob when queried, so a file added to a table that already had
        files needs no new view. Creating one, though, binds it: DuckDB reads the footer of
        every file, which made the end of each run cost more with every shard. So the
        definitions' hash is kept in ``warehouse.views``, written while the write lock is
        held, and the views are rebuilt only when that hash changes (a table gaining its
        first file or losing its last, or a new version of this module).

        Every run ends here, so this is also where a killed writer's temporary files
        (left by SIGKILL, which no ``finally`` survives) are swept; a live writer's never are.
        """
        sweep_temp_files([self.outputs / d for d in ("tables", "cache", "subsets", "manifests")]
                         + ([self.root / "cache"] if not is_local(self.outputs) else []))
        statements = self._view_statements()
        stamp = digest(duckdb.__version__, statements)  # the statements name the tables' location
        if self.db_path.exists() and self.views_stamp_path.exists() \
                and self.views_stamp_path.read_text(encoding="utf-8") == stamp:
            return
        con = self._connect(read_only=False, timeout_s=timeout_s)
        try:
            register(con, self.outputs)
            for s in statements:
                con.execute(s)
            write_text(stamp, self.views_stamp_path)
        finally:
            con.close()

    def _view_statements(self) -> list[str]:
        statements = []
        for table, cols in TABLES.items():
            d = self.table_dir(table)
            # The declared columns always exist (NULL where a file lacks one), so the views built on them bind.
            typed = f"SELECT {', '.join(f'CAST(NULL AS {t}) AS {c}' for c, t in cols.items())} WHERE false"
            if d.is_dir() and any(d.glob("*.parquet")):
                glob = str(d / "*.parquet").replace("'", "''")
                statements.append(f"CREATE OR REPLACE VIEW {table} AS {typed} "
                                  f"UNION ALL BY NAME SELECT * FROM read_parquet('{glob}', union_by_name=true)")
            else:
                statements.append(f"CREATE OR REPLACE VIEW {table} AS {typed}")
        statements += [f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in VIEWS.items()]
        statements += [f"CREATE OR REPLACE MACRO {name}{sql}" for name, sql in MACROS.items()]
        return statements

    def connect(self, timeout_s: float = 60.0) -> duckdb.DuckDBPyConnection:
        """A read-only connection for queries; creates the views first if the file is new."""
        if not self.db_path.exists():
            self.refresh_views(timeout_s)
        return register(self._connect(read_only=True, timeout_s=timeout_s), self.outputs)

    def query_params(self, sql: str, params: list) -> pl.DataFrame:
        """A read-only query whose values are bound as parameters, never formatted into the SQL."""
        con = self.connect()
        try:
            return con.sql(sql, params=params).pl()
        finally:
            con.close()

    def query(self, sql: str) -> pl.DataFrame:
        con = self.connect()
        try:
            return con.sql(sql).pl()
        finally:
            con.close()

    def _connect(self, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.db_path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


def _read_if_present(path: Location, columns: list[str] | None, where: list[tuple] | None) -> pl.DataFrame | None:
    """One request, not an existence check and then a read: on an object store each is a round trip."""
    try:
        return read_parquet(path, columns=columns, where=where)
    except FileNotFoundError:
        return None


_POLARS = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "INTEGER": pl.Int32, "DOUBLE": pl.Float64, "BOOLEAN": pl.Boolean}
