"""Content fingerprints that stamp every output with the data and settings behind it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def digest(*parts: Any, length: int = 16) -> str:
    """A short stable hash of JSON-serialisable parts (dict keys are sorted)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def file_digest(path: Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:length]


def files_digest(paths: Iterable[Path], root: Path, length: int = 16,
                 file_hash: Callable[[Path, int], str] = file_digest) -> str:
    """Hash of several files' relative names and contents, in sorted order.

    ``file_hash`` (same signature as ``file_digest``) lets a caller serve remembered digests.
    """
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(str(p.relative_to(root)).encode())
        h.update(file_hash(p, 64).encode())
    return h.hexdigest()[:length]


def text_digest(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
