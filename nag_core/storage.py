"""Where outputs live: the data root itself, or any fsspec filesystem.

``storage: {url: s3://bucket/prefix}`` in ``nag.yaml`` puts the project's bulky outputs
(``tables/``, ``cache/`` activation and embedding caches, ``subsets/``, ``manifests/``)
on an object store that every worker of a cluster can reach, while the inputs, the
small ``warehouse.duckdb`` catalogue and the input fingerprints stay in the data root.
Without the setting every output stays under the data root, exactly as before.

An output location is a ``pathlib.Path`` when local and a ``upath.UPath`` otherwise, so
code that only joins, lists and names paths is the same for both. The few operations
whose local form is not portable live here:

* Reads go through the filesystem object (pyarrow and polars cannot open ``memory://``
  or an fsspec-only protocol by URL).
* Writes: an object store has no rename, but a single upload is atomic (an object
  appears whole or not at all), so ``nag_core.atomic`` writes a local temporary file and
  uploads it in one ``put``. Readers never see half an object, as with a local rename.
* DuckDB reads remote Parquet through the same fsspec filesystem, registered on each
  connection (:func:`register`).
* A file's identity (size and modification time) comes from the store's listing, not
  from ``os.stat``; stores without an mtime report their creation time instead.
* Listings are not cached (``use_listings_cache: false`` unless ``storage.options`` says
  otherwise): a worker, the daemon or a CLI command may have written since, and a cached
  listing made a long-lived process miss outputs another process had written.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.errors import NagInputError

# A local path or a fsspec-backed UPath; both join with '/', list, and name the same way.
Location = Union[Path, Any]
Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class StorageSettings:
    """``storage:`` in nag.yaml. ``options`` are the filesystem's own (an endpoint, a region);
    credentials belong in the environment the filesystem reads (``AWS_*`` for s3fs), never in nag.yaml."""

    url: str
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise NagInputError(f"'storage.url' must be a path or URL such as s3://bucket/prefix, got {self.url!r}")
        if not isinstance(self.options, dict):
            raise NagInputError(f"'storage.options' must be a mapping of filesystem options, got {self.options!r}")


def location(url: str, options: dict | None = None, base: Path | None = None) -> Location:
    """A local ``Path`` for a plain path (relative to ``base``, the data root) or ``file://`` URL,
    else a UPath on the URL's fsspec filesystem."""
    if "://" not in url:
        return ((base or Path.cwd()) / Path(url).expanduser()).resolve()
    if url.startswith("file://"):
        return Path(url[len("file://"):]).resolve()
    from upath import UPath  # imported only when a remote store is configured

    try:
        # Listings are never cached: another process (a worker, the daemon) may have written since.
        path = UPath(url.rstrip("/"), **{"use_listings_cache": False, **(options or {})})
        path.fs  # noqa: B018 - builds the filesystem now, so a missing package is reported here, not mid-run
        return path
    except (ValueError, ImportError) as exc:
        raise NagInputError(f"nag.yaml: 'storage.url' {url!r} has no usable fsspec filesystem ({exc}). "
                            "Install the filesystem's package (for s3://: pip install 'nag-select[s3]'; gcsfs for gs://) "
                            "or fix the URL.") from exc


def is_local(path: Location) -> bool:
    return isinstance(path, Path)


def read_arrow(path: Location, columns: list[str] | None = None, where: list[tuple] | None = None) -> pa.Table:
    """``where``: pyarrow filters (``[("signal", "=", "nag_frequency")]``), applied batch by batch while reading,
    so rows that fail them are never held whole."""
    if is_local(path):
        return pq.read_table(path, columns=columns, filters=where)
    return pq.read_table(path.path, columns=columns, filters=where, filesystem=path.fs)


def read_schema(path: Location) -> pa.Schema:
    if is_local(path):
        return pq.read_schema(path)
    with path.open("rb") as fh:
        return pq.read_schema(fh)


def read_parquet(path: Location, columns: list[str] | None = None, where: list[tuple] | None = None) -> pl.DataFrame:
    if is_local(path) and where is None:
        return pl.read_parquet(path, columns=columns)
    return pl.from_arrow(read_arrow(path, columns, where))


def read_files(paths: list[str], root: Location) -> pl.DataFrame:
    """Several Parquet files (named as :func:`listing` names them) with each row's file in ``_file``."""
    if is_local(root):
        return pl.scan_parquet(paths, include_file_paths="_file").collect()
    frames = [read_parquet(_join(root, p)).with_columns(pl.lit(p).alias("_file")) for p in paths]
    return pl.concat(frames, how="diagonal_relaxed")


def listing(folder: Location, suffix: str = ".parquet") -> dict[str, Stamp]:
    """``{path: (size, mtime_ns, ctime_ns, inode)}`` of the visible ``*suffix`` files directly in ``folder``.

    One directory read either way: ``os.scandir`` locally, one ``ls`` on a store. Paths
    are strings: absolute paths locally, store URLs otherwise.
    """
    out: dict[str, Stamp] = {}
    if is_local(folder):
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.endswith(suffix) and not entry.name.startswith("."):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue
                        out[entry.path] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return out
    try:
        entries = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return out
    for info in entries:
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if info.get("type") == "file" and name.endswith(suffix) and not name.startswith("."):
            out[str(folder / name)] = info_stamp(info)
    return out


def stamp(path: Location) -> Stamp | None:
    """One file's identity, or None when it does not exist."""
    try:
        if is_local(path):
            st = os.stat(path)
            return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        return info_stamp(path.fs.info(path.path))
    except FileNotFoundError:
        return None


def info_stamp(info: dict) -> Stamp:
    """(size, mtime_ns, 0, 0) from an fsspec ``info`` mapping, whichever time key the store uses."""
    when = next((info[k] for k in ("mtime", "LastModified", "last_modified", "updated", "created") if info.get(k)), 0)
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, dt.datetime):
        when = when.timestamp()
    return (int(info.get("size") or 0), int(float(when) * 1e9), 0, 0)


def register(con: Any, *paths: Location) -> Any:
    """Let a DuckDB connection read the remote locations among ``paths`` (once per protocol)."""
    have = set(con.list_filesystems())
    for path in paths:
        if is_local(path):
            continue
        protocols = path.fs.protocol if isinstance(path.fs.protocol, tuple) else (path.fs.protocol,)
        if not have & set(protocols):
            con.register_filesystem(path.fs)
            have |= set(protocols)
    return con


def process_private(path: Location) -> bool:
    """True for stores that other processes cannot see (fsspec's ``memory://``), which rule out worker processes."""
    if is_local(path):
        return False
    protocols = path.fs.protocol if isinstance(path.fs.protocol, tuple) else (path.fs.protocol,)
    return "memory" in protocols


def _join(root: Location, path: str) -> Location:
    """A location for a string :func:`listing` returned under ``root``."""
    if is_local(root):
        return Path(path)
    return type(root)(path, **root.storage_options)
