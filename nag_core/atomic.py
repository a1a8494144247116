"""Write files so that readers never see half of them.

Every output goes to a temporary sibling first and is renamed into place; a rename on
one filesystem is atomic, so a crash or a concurrent reader sees the old file or the
new one, never a torn write.

A process killed outright (SIGKILL, OOM killer, power loss) cannot remove its temporary
file, so the name carries the writer's host and process id:
``.<name>.<host>.<pid>.<random>.tmp``. ``sweep_temp_files`` removes those whose writer
is gone, and never one that a live process (a concurrent run) is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.storage import Location, is_local

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
# A temporary file from another host is only removed once it is this old: its writer
# cannot be asked whether it is alive (the data root may be a shared filesystem).
FOREIGN_TEMP_AGE_S = 24 * 3600


@contextlib.contextmanager
def atomic_path(path: Location) -> Iterator[Path]:
    """Yield a temporary local path; on success it becomes ``path`` in one step.

    Locally the temporary file sits beside ``path`` and is renamed over it. On an object
    store (``nag_core.storage``) it sits in the system's temporary folder and is uploaded
    in one ``put``, which is atomic there: the object appears whole or not at all.
    """
    if not is_local(path):
        fd, tmp = tempfile.mkstemp(prefix="nag-upload-", suffix=path.suffix)
        os.close(fd)
        try:
            yield Path(tmp)
            path.fs.put_file(tmp, path.path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def stale_temp_files(folders: list[Path]) -> list[Path]:
    """Temporary files under ``folders`` whose writer has died (see the module docstring)."""
    out = []
    now = time.time()
    for folder in folders:
        if not is_local(folder) or not folder.is_dir():  # uploads leave nothing behind on a store
            continue
        for dirpath, _, names in os.walk(folder):
            for name in names:
                m = _TEMP.match(name)
                if m is None:
                    continue
                path = Path(dirpath) / name
                dead = False
                if m["host"] == _HOST:
                    dead = int(m["pid"]) != os.getpid() and not _alive(int(m["pid"]))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        dead = now - path.stat().st_mtime > FOREIGN_TEMP_AGE_S
                if dead:
                    out.append(path)
    return sorted(out)


def sweep_temp_files(folders: list[Path]) -> list[Path]:
    """Remove the temporary files of dead writers; returns what was removed."""
    removed = stale_temp_files(folders)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def write_parquet(table: pa.Table, path: Location) -> Location:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def write_text(text: str, path: Location) -> Location:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
