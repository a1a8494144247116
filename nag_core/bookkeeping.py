"""Cheap answers to "what changed?": remembered file fingerprints and an incrementally read ledger.

Why: every Dagster run builds a fresh ``State``, and a State used to hash every pool
file and read every ``materializations`` Parquet file. With many shards that
bookkeeping, not the work, dominated a run, and it grew with the shard count.

* File digests are remembered by a stat stamp (size, mtime_ns, ctime_ns, inode): in
  this process, and across processes in ``NAG_HOME/cache/fingerprints.json``. A stamp
  that differs means the file is hashed again. A file modified less than
  ``RACY_SECONDS`` before it was hashed is not remembered, because a second write in
  the same timestamp tick could leave its mtime unchanged (git's "racily clean" rule).
  The store is written atomically (``nag_core.atomic``) after merging what another
  process wrote meanwhile; concurrent writers can lose each other's entries (last
  writer wins), which only costs a re-hash. A store that cannot be parsed is ignored.
* Ledger rows are remembered per Parquet file by the same stamp, so a State reads only
  the files written since the last State in this process; the first read in a process
  reads all files in one Polars scan. A State that needs only a few partitions' rows
  (a one-partition run) reads just their files.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path


from nag_core import storage
from nag_core.atomic import write_text
from nag_core.hashing import file_digest, files_digest
from nag_core.storage import Location, Stamp
from nag_core.targets import SPEC_FILE, target_files

RACY_SECONDS = 1.0
_STORE_VERSION = 1

_lock = threading.Lock()
_digests: dict[str, tuple[Stamp, str]] = {}  # absolute path -> (stamp, full sha256 hex), this process
_loaded_stores: set[str] = set()
_ledger_rows: dict[str, tuple[Stamp, dict]] = {}  # ledger file -> (stamp, row), this process


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _settled(st: os.stat_result) -> bool:
    """Written long enough ago that a later write must change the mtime (ctime-only changes keep content)."""
    return _settled_ns(st.st_mtime_ns)


def _settled_ns(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns > RACY_SECONDS * 1e9


class FingerprintStore:
    """File digests of one data root's inputs, equal to ``hashing.file_digest`` but computed once per change."""

    def __init__(self, root: Path):
        self.path = Path(root) / "cache" / "fingerprints.json"
        self._new: dict[str, tuple[Stamp, str]] = {}
        with _lock:
            if str(self.path) not in _loaded_stores:
                _loaded_stores.add(str(self.path))
                for key, (stamp, hexdigest) in _read_store(self.path).items():
                    _digests.setdefault(key, (stamp, hexdigest))

    def file(self, path: Path, length: int = 16) -> str:
        key = str(Path(path).absolute())
        st = os.stat(key)
        hit = _digests.get(key)
        if hit is not None and hit[0] == _stamp(st):
            return hit[1][:length]
        hexdigest = file_digest(Path(key), 64)
        if _settled(st) and _stamp(os.stat(key)) == _stamp(st):  # unchanged while we read it
            with _lock:
                _digests[key] = (_stamp(st), hexdigest)
            self._new[key] = (_stamp(st), hexdigest)
        return hexdigest[:length]

    def files(self, paths: Iterable[Path], root: Path, length: int = 16) -> str:
        """``hashing.files_digest`` with remembered file digests (so the same value)."""
        return files_digest(paths, root, length, file_hash=self.file)

    def target(self, folder: Path) -> str:
        """Same value as ``targets.target_fingerprint`` (the same files: examples plus the spec)."""
        spec = folder / SPEC_FILE
        return self.files(target_files(folder) + ([spec] if spec.exists() else []), folder)

    def save(self) -> None:
        """Merge this store's new digests into the file; entries of vanished files are dropped."""
        if not self._new:
            return
        merged = _read_store(self.path) | self._new
        live = {k: v for k, v in merged.items() if os.path.exists(k)}
        payload = {"version": _STORE_VERSION, "files": {k: [*stamp, d] for k, (stamp, d) in sorted(live.items())}}
        try:
            write_text(json.dumps(payload, separators=(",", ":")), self.path)
        except OSError:  # a read-only data root: digests are recomputed next time, nothing breaks
            pass
        self._new = {}


def _read_store(path: Path) -> dict[str, tuple[Stamp, str]]:
    """The stored digests, or nothing when the file is missing, torn or of another version."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != _STORE_VERSION:
            return {}
        out = {}
        for key, (size, mtime, ctime, ino, hexdigest) in raw["files"].items():
            if not (isinstance(hexdigest, str) and len(hexdigest) == 64):
                return {}
            out[key] = ((int(size), int(mtime), int(ctime), int(ino)), hexdigest)
        return out
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def read_ledger(table_dir: Location) -> dict[tuple[str, str], dict]:
    """The ``materializations`` rows by (asset, partition), re-reading only files that changed."""
    current = storage.listing(table_dir)
    changed = [p for p, st in current.items() if (hit := _ledger_rows.get(p)) is None or hit[0] != st]
    fresh: dict[str, dict] = {}
    if changed:
        try:
            frame = storage.read_files(changed, table_dir)
        except FileNotFoundError:  # a file went away between listing and reading: list again
            return read_ledger(table_dir)
        for row in frame.iter_rows(named=True):
            path = row.pop("_file")
            fresh[path] = row
            with _lock:  # a file written moments ago is re-read next time (see RACY_SECONDS)
                if _settled_ns(current[path][1]):
                    _ledger_rows[path] = (current[path], row)
                else:
                    _ledger_rows.pop(path, None)
    out = {}
    for path in current:
        row = fresh[path] if path in fresh else _ledger_rows.get(path, (None, None))[1]
        if row is not None:  # None: a file with no rows
            out[(row["asset"], row["partition"])] = row
    return out


def read_ledger_row(path: Location) -> dict | None:
    """One partition's ledger row from its own file, cached like :func:`read_ledger`'s.

    A run of one partition needs the rows of its few inputs, not the whole ledger, whose
    listing alone grows with the number of partitions.
    """
    key = str(path)
    st = storage.stamp(path)
    if st is None:
        return None
    hit = _ledger_rows.get(key)
    if hit is not None and hit[0] == st:
        return hit[1]
    try:
        frame = storage.read_parquet(path)
    except FileNotFoundError:
        return None
    row = frame.row(0, named=True) if frame.height else None
    if _settled_ns(st[1]):
        with _lock:
            _ledger_rows[key] = (st, row)
    return row
