"""What a pipeline step returns, and the bookkeeping every step shares.

Steps are plain functions over a ``State``: the Dagster assets call them, and so can a
notebook or a worker of another engine. A step writes its outputs, records its
fingerprint and data version in the ``materializations`` table, and hands back
metadata that the asset turns into Dagster metadata.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

import nag_core
from nag_core.errors import NagInputError
from nag_core.freshness import CODE_VERSIONS, State
from nag_core.warehouse import Warehouse, partition_id

Log = Callable[[str], None]


@dataclass
class StepResult:
    data_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    preview: pl.DataFrame | None = None  # shown as a table in the UI
    plot_png: bytes | None = None  # shown as an image in the UI


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Library versions stamped on every cache and manifest."""
    import duckdb
    import torch
    import transformers

    return {"nag_select": nag_core.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "polars": pl.__version__, "duckdb": duckdb.__version__}


def record(state: State, asset: str, key: str, fingerprint: str, data_version: str, run_id: str) -> None:
    """Mark a partition built from ``fingerprint``; the runner compares against it later."""
    row = pl.DataFrame([{"asset": asset, "partition": key, "fingerprint": fingerprint,
                         "data_version": data_version, "run_id": run_id, "created_at": now()}])
    Warehouse(state.home.root).write("materializations", partition_id(asset, *key.split("|")), row)
    state.forget_ledger()


def code_version(asset: str) -> str:
    return CODE_VERSIONS[asset]


def require_fingerprint(state: State, asset: str, key: str) -> str:
    fp = state.fingerprint(asset, key)
    if fp is None:
        raise NagInputError(f"{asset}[{key}]: an upstream input is missing; materialise upstream assets first "
                            "(nag-select run does this).")
    return fp
