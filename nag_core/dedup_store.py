"""Cross-shard dedup lookups in the warehouse, with memory bounded by the new shard.

Why: a new shard is deduplicated against every document other shards kept. Reading all
their signatures (and, for the exact check, all their texts) into memory grew without
bound: 2.7 GB at one million earlier documents. Instead each kept document's LSH band
keys are stored once, in the ``dedup_bands`` table (one Parquet file per shard: docid,
band, bucket, settings_hash), and DuckDB joins the new shard's band keys against them.
The new shard's keys are the small, registered side of that hash join; the stored side
is streamed from Parquet, so only the candidate docids come back. Their signatures and
texts are then read with a DuckDB filter on those docids. The exact pass does the same
with ``pool_kept``: a semi-join on the new shard's normalised-text hashes returns only
the documents whose hash matches.

Every value (file lists, the settings hash) is a query parameter or a registered frame,
never formatted into SQL. Each query runs in its own in-memory DuckDB connection with a
fixed memory limit (:data:`DUCKDB_MEMORY_LIMIT`), so no lock on ``warehouse.duckdb`` is
taken and the scan's buffers do not grow with the number of files.

Data roots written before ``dedup_bands`` existed: a shard whose ``dedup_signatures``
partition has no ``dedup_bands`` partition, or only an older one, gets its bands derived
from its signatures (:func:`nag_core.near_dedup.band_rows`), one shard at a time, into
a temporary Parquet file used for this lookup only. Nothing is written into another
shard's partitions; the shard's own next run writes its bands.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from nag_core.minhash import MinHashSettings
from nag_core.near_dedup import band_rows, signature_schema
from nag_core.warehouse import Warehouse


# DuckDB's buffer pool keeps freed Parquet read buffers up to its memory limit (80% of RAM
# by default), and one query over all files reads many at once: both made the scan's
# footprint grow with the number of earlier shards. So each query reads a bounded group
# of files (at most GROUP_BYTES on disk, GROUP_FILES files), in turn, on one connection
# with a fixed limit; a join that needs more spills to a temporary directory. Grouping
# keeps the number of queries, and so the fixed cost per run, from growing one per shard.
DUCKDB_MEMORY_LIMIT = "256MB"
GROUP_BYTES = 32 << 20
GROUP_FILES = 64


def _others(wh: Warehouse, table: str, shard: str) -> list[Path]:
    """This table's partition files of every other shard, in partition order."""
    return [wh.table_dir(table) / f"{p}.parquet" for p in wh.partitions(table) if p != shard]


def _groups(files: list[Path]) -> list[list[str]]:
    groups: list[list[str]] = []
    size = 0
    for f in files:
        bytes_ = f.stat().st_size
        if not groups or len(groups[-1]) >= GROUP_FILES or size + bytes_ > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(str(f))
        size += bytes_
    return groups


def _per_file(sql: str, files: list[Path], params: dict, frames: dict[str, pl.DataFrame]) -> list[pl.DataFrame]:
    """``sql`` run once per group of files (bound to ``$files``), in file order, on one connection."""
    with tempfile.TemporaryDirectory(prefix="nag-duckdb-") as spill:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": spill})
        try:
            for name, frame in frames.items():
                con.register(name, frame)
            return [con.sql(sql, params={**params, "files": group}).pl() for group in _groups(files)]
        finally:
            con.close()


def kept_norm_hashes(wh: Warehouse, shard: str, norm_hashes: pl.Series) -> pl.DataFrame:
    """(norm_hash, docid) kept by other shards whose hash is among ``norm_hashes``.

    Rows come in partition order, then docid (the order of the files themselves), so the
    exact pass's "first owner of a hash wins" picks the same document as a full read.
    """
    files = _others(wh, "pool_kept", shard)
    empty = pl.DataFrame(schema={"norm_hash": pl.String, "docid": pl.String})
    if not files or norm_hashes.is_empty():
        return empty
    parts = _per_file("SELECT norm_hash, docid FROM read_parquet($files) WHERE norm_hash IN "
                      "(SELECT norm_hash FROM new_hashes) ORDER BY docid", files, {},
                      {"new_hashes": pl.DataFrame({"norm_hash": norm_hashes.unique()})})
    return pl.concat([p.select("norm_hash", "docid") for p in parts]).cast(empty.schema)


def prior_lookup(wh: Warehouse, shard: str, settings: MinHashSettings,
                 with_text: bool) -> Callable[[pl.DataFrame], pl.DataFrame | None]:
    """The ``kept_signatures`` function for :func:`nag_core.near_dedup.dedup_incremental`.

    Given the new shard's band rows, it returns the signature rows (and, ``with_text``,
    the texts) of only those documents kept by other shards with these settings that
    share a bucket with a new document.
    """
    def lookup(new_bands: pl.DataFrame) -> pl.DataFrame | None:
        sig_files = _others(wh, "dedup_signatures", shard)
        if not sig_files or new_bands.is_empty():
            return None
        with tempfile.TemporaryDirectory(prefix="nag-bands-") as tmp:
            band_files = _band_files(wh, shard, settings, Path(tmp))
            cand = _per_file("SELECT DISTINCT s.docid FROM read_parquet($files) s JOIN new_bands n "
                             "ON s.band = n.band AND s.bucket = n.bucket WHERE s.settings_hash = $hash",
                             band_files, {"hash": settings.settings_hash}, {"new_bands": new_bands.select("band", "bucket")})
        cand = pl.concat(cand).unique() if cand else None
        if cand is None or cand.is_empty():
            return None
        # cand is a registered frame, so it is the hash join's build side and each file streams past it
        rows = pl.concat(_per_file("SELECT g.docid, g.shard, g.text_hash, g.settings_hash, g.signature "
                                   "FROM read_parquet($files) g SEMI JOIN cand c ON g.docid = c.docid "
                                   "WHERE g.settings_hash = $hash", sig_files, {"hash": settings.settings_hash},
                                   {"cand": cand}), how="diagonal_relaxed").cast(signature_schema(settings))
        doc_files = _others(wh, "documents", shard)
        if with_text and rows.height and doc_files:
            texts = pl.concat(_per_file("SELECT d.docid, d.text FROM read_parquet($files) d SEMI JOIN cand c "
                                        "ON d.docid = c.docid", doc_files, {}, {"cand": rows.select("docid")}))
            rows = rows.join(texts, on="docid", how="left")
        return rows

    return lookup


def _band_files(wh: Warehouse, shard: str, settings: MinHashSettings, tmp: Path) -> list[Path]:
    """Stored band files of other shards; bands derived from signatures where missing or older."""
    out = []
    for sig_file in _others(wh, "dedup_signatures", shard):
        bands = wh.table_dir("dedup_bands") / sig_file.name
        if bands.exists() and bands.stat().st_mtime_ns >= sig_file.stat().st_mtime_ns:
            out.append(bands)
            continue
        sigs = pl.read_parquet(sig_file).filter(pl.col("settings_hash") == settings.settings_hash)
        if sigs.height:
            derived = tmp / sig_file.name
            band_rows(sigs, settings).write_parquet(derived)
            out.append(derived)
    return out
