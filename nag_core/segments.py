"""Compacted segments of small partition files, so a lookup over every other shard opens few files.

Why: deduplicating a new shard joins its keys against what every other shard stored
(docids, normalised-text hashes, LSH band keys). With one Parquet file per shard and
table, each lookup opened every file: about 0.1 ms per file in DuckDB, so the cost of a
run grew with the number of shards even when they were small. A segment is a copy of
many partitions' lookup columns in one file, with a ``_partition`` column saying which
partition each row came from. A lookup reads the segments plus the few partition
files not yet in one: at most ``COMPACT_AT`` files plus about ``FANOUT`` segments per
level, whatever the shard count.

The partition files stay the source of truth. A segment records each partition file's
identity (size, mtime, inode) when it was copied; a partition rewritten since (a shard
rerun) or removed has its segment rows ignored and is read from its own file, until the
next merge drops the stale rows. So a segment can never hide a change, and deleting
every segment loses nothing but speed.

Merging is size-tiered, as in an LSM tree: ``COMPACT_AT`` loose partition files become
a level-0 segment, and ``FANOUT`` segments of one level merge into one of the next, so
each row is rewritten about log_FANOUT(partitions / COMPACT_AT) times in all. The
manifest (``_segments/manifest.json``) is replaced atomically; two processes merging at
once each write a valid manifest, the last one wins, and anything the lost one covered
is still read from its partition files. A segment that no manifest names is removed
only once it is ``ORPHAN_AGE_S`` old, so a reader that listed it just before never
finds it gone.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from nag_core import storage
from nag_core.atomic import atomic_path, write_text
from nag_core.storage import Location
from nag_core.warehouse import Warehouse, scratch_duckdb

# The columns a lookup needs from each table; the rest (texts, signatures) stay in the partition files.
LOOKUP_COLUMNS = {
    "documents": ("docid",),
    "pool_kept": ("docid", "norm_hash"),
    "dedup_bands": ("docid", "band", "bucket", "settings_hash"),
}
COMPACT_AT = 32  # loose partition files that trigger a level-0 segment
FANOUT = 8  # segments of one level that merge into one of the next
ORPHAN_AGE_S = 3600


@dataclass(frozen=True)
class Segment:
    file: Location
    partitions: tuple[str, ...]  # those whose rows in the file are still current


@dataclass(frozen=True)
class Sources:
    """Where the current rows of some partitions are: segment rows of ``segments``, and whole ``files``."""

    segments: tuple[Segment, ...]
    files: tuple[Location, ...]

    @property
    def empty(self) -> bool:
        return not self.segments and not self.files


def segment_dir(wh: Warehouse, table: str) -> Location:
    return wh.table_dir(table) / "_segments"


def listing(folder: Location) -> dict[str, list[int]]:
    """Partition -> identity (size, mtime, inode) of every partition file, in one directory scan."""
    return {path.rsplit("/", 1)[-1][: -len(".parquet")]: [size, mtime, ino]
            for path, (size, mtime, _, ino) in storage.listing(folder).items()}


_manifest_cache: dict[str, tuple[list[int], dict]] = {}


def _manifest(wh: Warehouse, table: str) -> tuple[list[dict], list[dict]]:
    """The live segments, and the retired ones waiting to be deleted (parsed once per manifest version)."""
    path = segment_dir(wh, table) / "manifest.json"
    ident = storage.stamp(path)
    if ident is None:
        return [], []
    cached = _manifest_cache.get(str(path))
    if cached is None or cached[0] != ident:
        cached = (ident, json.loads(path.read_text(encoding="utf-8")))
        _manifest_cache[str(path)] = cached
    return list(cached[1]["segments"]), list(cached[1].get("retired", []))


def sources(wh: Warehouse, table: str, partitions: list[str], compact: bool = True) -> Sources:
    """Where to read the rows of ``partitions`` (a table of :data:`LOOKUP_COLUMNS`).

    ``compact``: first fold loose partition files into segments when there are enough;
    read-only callers pass False.
    """
    if table not in LOOKUP_COLUMNS:
        raise KeyError(f"{table!r} has no lookup segments (known: {', '.join(LOOKUP_COLUMNS)})")
    folder = wh.table_dir(table)
    files = listing(folder)
    if compact:
        _compact(wh, table, files)
    wanted = set(partitions) & files.keys()
    covered: set[str] = set()
    segments = []
    for seg in _manifest(wh, table)[0]:
        if not (folder / "_segments" / seg["file"]).exists():  # only if a merge outlived ORPHAN_AGE_S
            continue
        current = tuple(sorted(p for p, ident in seg["partitions"].items()
                               if p in wanted and p not in covered and files[p] == ident))
        if current:
            segments.append(Segment(folder / "_segments" / seg["file"], current))
            covered.update(current)
    return Sources(tuple(segments), tuple(folder / f"{p}.parquet" for p in sorted(wanted - covered)))


def _compact(wh: Warehouse, table: str, files: dict[str, list[int]]) -> None:
    manifest, retired = _manifest(wh, table)
    in_segments = {p for seg in manifest for p, ident in seg["partitions"].items() if files.get(p) == ident}
    loose = sorted(p for p in files if p not in in_segments)
    changed = False
    if len(loose) >= COMPACT_AT:
        manifest.append(_write_segment(wh, table, files, [], loose, level=0))
        changed = True
    level = 0
    while any(seg["level"] >= level for seg in manifest):
        same = [seg for seg in manifest if seg["level"] == level]
        if len(same) >= FANOUT:
            manifest = [seg for seg in manifest if seg["level"] != level]
            manifest.append(_write_segment(wh, table, files, same, [], level=level + 1))
            retired += [{"file": seg["file"], "at": time.time()} for seg in same]
            changed = True
        level += 1
    if changed:
        retired = _remove_retired(wh, table, manifest, retired)
        write_text(json.dumps({"segments": manifest, "retired": retired}), segment_dir(wh, table) / "manifest.json")


def _write_segment(wh: Warehouse, table: str, files: dict[str, list[int]], merged: list[dict], loose: list[str],
                   level: int) -> dict:
    """One file holding the current rows of ``merged`` segments and of ``loose`` partition files."""
    cols = ", ".join(LOOKUP_COLUMNS[table])
    table_dir = wh.table_dir(table)
    covers: dict[str, list[int]] = {}
    parts, params = [], {}
    for i, seg in enumerate(merged):
        current = [p for p, ident in seg["partitions"].items() if files.get(p) == ident]
        covers |= {p: files[p] for p in current}
        parts.append(f"SELECT {cols}, _partition FROM read_parquet($seg{i}) WHERE _partition IN (SELECT unnest($keep{i}))")
        params |= {f"seg{i}": str(segment_dir(wh, table) / seg["file"]), f"keep{i}": current}
    if loose:
        covers |= {p: files[p] for p in loose}
        # The partition is the file's name: partition names never contain '/' (nag_core.names).
        parts.append(f"SELECT {cols}, regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS _partition "
                     "FROM read_parquet($loose, filename = true)")
        params["loose"] = [str(table_dir / f"{p}.parquet") for p in loose]
    name = f"L{level}-{uuid.uuid4().hex[:16]}.parquet"
    target = segment_dir(wh, table) / name
    with scratch_duckdb(wh.outputs) as con, atomic_path(target) as tmp:
        query = " UNION ALL ".join(parts) if parts else f"SELECT {cols}, '' AS _partition WHERE false"
        out = str(tmp).replace("'", "''")  # our own temporary file; COPY takes no parameter for it
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)", params)
    return {"file": name, "level": level, "partitions": covers}


def _remove_retired(wh: Warehouse, table: str, manifest: list[dict], retired: list[dict]) -> list[dict]:
    """Delete segments retired ``ORPHAN_AGE_S`` ago, and unnamed ones (a lost concurrent merge) that old; the rest wait."""
    now = time.time()
    named = {seg["file"] for seg in manifest}
    waiting = {r["file"]: r["at"] for r in retired if r["file"] not in named}
    for path in segment_dir(wh, table).glob("L*.parquet"):
        if path.name in named:
            continue
        written = storage.stamp(path)
        since = waiting.get(path.name, written[1] / 1e9 if written else now)
        if written is None or now - since > ORPHAN_AGE_S:
            path.unlink(missing_ok=True)
            waiting.pop(path.name, None)
    return [{"file": f, "at": at} for f, at in sorted(waiting.items())]


def clear(wh: Warehouse, table: str) -> None:
    """Forget every segment of ``table`` (they are rebuilt from the partition files as lookups need them)."""
    d = segment_dir(wh, table)
    if d.is_dir():
        for path in d.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)
