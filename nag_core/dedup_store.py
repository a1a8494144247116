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
never formatted into SQL. Each query runs on a scratch DuckDB connection with bounded
memory (:func:`nag_core.warehouse.scratch_duckdb`), so no lock on ``warehouse.duckdb`` is
taken and the scan's buffers do not grow with the number of files.

The lookup columns of the tables read across every shard (``pool_kept``, ``dedup_bands``,
and the docids of ``documents``) come from compacted segments
(:mod:`nag_core.segments`), so a lookup opens a bounded number of files however many
shards there are; signatures and texts are read from the candidates' own shards only.

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

import polars as pl

from nag_core import segments
from nag_core.minhash import MinHashSettings
from nag_core.near_dedup import band_rows, signature_schema
from nag_core.storage import Location, read_parquet
from nag_core.warehouse import Warehouse, scratch_duckdb


# Loose files are read in bounded groups (at most GROUP_BYTES on disk, GROUP_FILES files),
# in turn, so a scan's buffers stay within the scratch connection's memory limit.
GROUP_BYTES = 32 << 20
GROUP_FILES = 64


def _others(wh: Warehouse, table: str, shard: str) -> list[str]:
    """Every other shard's partition of this table, in partition order."""
    return [p for p in wh.partitions(table) if p != shard]


def _groups(files: tuple[Location, ...]) -> list[list[str]]:
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


# What ``{rows}`` in a lookup's SQL stands for: every source exposes its table's columns plus ``_partition``.
_FILES = "(SELECT *, regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS _partition FROM read_parquet($files, filename = true))"
# Each segment's rows of the partitions still current in it (a stale copy of a partition may sit in another).
# Segments are matched by base name (unique: L<level>-<uuid>.parquet), because DuckDB reports a
# file read through fsspec under its own spelling of the URL (memory:///b/x for memory://b/x).
_SEGMENTS = ("(SELECT s.* EXCLUDE (filename) FROM read_parquet($files, filename = true) s "
             "SEMI JOIN _current c ON regexp_extract(s.filename, '[^/]+$') = c.file AND s._partition = c.partition)")


def _scan(sql: str, src: segments.Sources, params: dict, frames: dict[str, pl.DataFrame]) -> list[pl.DataFrame]:
    """``sql`` run once over the segments and once per group of loose files, on one connection.

    ``{rows}`` in ``sql`` is replaced by a fixed subquery (never by a value): the segments'
    current rows, or the files' rows. Values are bound as parameters.
    """
    with scratch_duckdb(*src.files, *(seg.file for seg in src.segments)) as con:
        for name, frame in frames.items():
            con.register(name, frame)
        out = []
        if src.segments:
            con.register("_current", pl.DataFrame(
                [(seg.file.name, p) for seg in src.segments for p in seg.partitions], schema=["file", "partition"], orient="row"))
            out.append(con.sql(sql.format(rows=_SEGMENTS), params={**params, "files": [str(seg.file) for seg in src.segments]}).pl())
        return out + [con.sql(sql.format(rows=_FILES), params={**params, "files": group}).pl()
                      for group in _groups(src.files)]


def _files(wh: Warehouse, table: str, partitions: list[str]) -> segments.Sources:
    """Whole partition files, for tables a lookup reads only a few partitions of."""
    return segments.Sources((), tuple(wh.table_dir(table) / f"{p}.parquet" for p in partitions))


def kept_norm_hashes(wh: Warehouse, shard: str, norm_hashes: pl.Series) -> pl.DataFrame:
    """(norm_hash, docid) kept by other shards whose hash is among ``norm_hashes``.

    Rows come in (shard, docid) order, so when two shards kept the same text (possible
    only if they were deduplicated at the same time) the exact pass's "first owner of a
    hash wins" always picks the same document.
    """
    empty = pl.DataFrame(schema={"norm_hash": pl.String, "docid": pl.String})
    src = segments.sources(wh, "pool_kept", _others(wh, "pool_kept", shard))
    if src.empty or norm_hashes.is_empty():
        return empty
    parts = _scan("SELECT norm_hash, docid, _partition FROM {rows} WHERE norm_hash IN (SELECT norm_hash FROM new_hashes)",
                  src, {}, {"new_hashes": pl.DataFrame({"norm_hash": norm_hashes.unique()})})
    return pl.concat(parts).sort("_partition", "docid").select("norm_hash", "docid").cast(empty.schema)


def kept_by_other_shards(wh: Warehouse, shard: str, docids: pl.Series) -> set[str]:
    """Those of ``docids`` that another shard's ``pool_kept`` holds, read by a semi-join."""
    src = segments.sources(wh, "pool_kept", _others(wh, "pool_kept", shard))
    if src.empty or docids.is_empty():
        return set()
    parts = _scan("SELECT docid FROM {rows} WHERE docid IN (SELECT docid FROM wanted)", src, {},
                  {"wanted": pl.DataFrame({"docid": docids.unique()})})
    return set(pl.concat(parts)["docid"].to_list())


def docid_owners(wh: Warehouse, shard: str, docids: pl.Series, current: set[str]) -> dict[str, str]:
    """docid -> shard for those of ``docids`` that another current shard's ``documents`` hold (lowest shard wins)."""
    src = segments.sources(wh, "documents", [p for p in _others(wh, "documents", shard) if p in current])
    if src.empty or docids.is_empty():
        return {}
    parts = _scan("SELECT docid, min(_partition) AS shard FROM {rows} WHERE docid IN (SELECT docid FROM new_ids) "
                  "GROUP BY docid", src, {}, {"new_ids": pl.DataFrame({"docid": docids.unique()})})
    clash = pl.concat(parts).group_by("docid").agg(pl.col("shard").min())
    return dict(zip(clash["docid"].to_list(), clash["shard"].to_list(), strict=True))


def prior_lookup(wh: Warehouse, shard: str, settings: MinHashSettings,
                 with_text: bool) -> Callable[[pl.DataFrame], pl.DataFrame | None]:
    """The ``kept_signatures`` function for :func:`nag_core.near_dedup.dedup_incremental`.

    Given the new shard's band rows, it returns the signature rows (and, ``with_text``,
    the texts) of only those documents kept by other shards with these settings that
    share a bucket with a new document. Band keys come from segments; signatures and
    texts are read from the candidates' own shards only.
    """
    def lookup(new_bands: pl.DataFrame) -> pl.DataFrame | None:
        if not _others(wh, "dedup_signatures", shard) or new_bands.is_empty():
            return None
        with tempfile.TemporaryDirectory(prefix="nag-bands-") as tmp:
            cand = _scan("SELECT DISTINCT s.docid, s._partition FROM {rows} s JOIN new_bands n "
                         "ON s.band = n.band AND s.bucket = n.bucket WHERE s.settings_hash = $hash",
                         _band_sources(wh, shard, settings, Path(tmp)), {"hash": settings.settings_hash},
                         {"new_bands": new_bands.select("band", "bucket")})
        cand = pl.concat(cand).unique() if cand else None
        if cand is None or cand.is_empty():
            return None
        owners = sorted(set(cand["_partition"].to_list()))
        # cand is a registered frame, so it is the hash join's build side and each file streams past it
        rows = pl.concat(_scan("SELECT g.docid, g.shard, g.text_hash, g.settings_hash, g.signature "
                               "FROM {rows} g SEMI JOIN cand c ON g.docid = c.docid WHERE g.settings_hash = $hash",
                               _files(wh, "dedup_signatures", owners), {"hash": settings.settings_hash},
                               {"cand": cand.select("docid")}), how="diagonal_relaxed").cast(signature_schema(settings))
        doc_owners = [p for p in owners if (wh.table_dir("documents") / f"{p}.parquet").exists()]
        if with_text and rows.height and doc_owners:
            texts = pl.concat(_scan("SELECT d.docid, d.text FROM {rows} d SEMI JOIN cand c ON d.docid = c.docid",
                                    _files(wh, "documents", doc_owners), {}, {"cand": rows.select("docid")}))
            rows = rows.join(texts, on="docid", how="left")
        return rows

    return lookup


def _band_sources(wh: Warehouse, shard: str, settings: MinHashSettings, tmp: Path) -> segments.Sources:
    """Other shards' stored band keys; derived from signatures where missing or older than them."""
    sig_files = segments.listing(wh.table_dir("dedup_signatures"))
    band_files = segments.listing(wh.table_dir("dedup_bands"))
    stored, derived = [], []
    for name in sorted(sig_files.keys() - {shard}):
        if name in band_files and band_files[name][1] >= sig_files[name][1]:  # mtime_ns: written after its signatures
            stored.append(name)
            continue
        sig_file = wh.table_dir("dedup_signatures") / f"{name}.parquet"
        sigs = read_parquet(sig_file).filter(pl.col("settings_hash") == settings.settings_hash)
        if sigs.height:
            band_rows(sigs, settings).write_parquet(tmp / sig_file.name)
            derived.append(tmp / sig_file.name)
    src = segments.sources(wh, "dedup_bands", stored)
    return segments.Sources(src.segments, src.files + tuple(derived))
