"""Turning a core ``StepResult`` and its checks into Dagster metadata."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import dagster as dg
import polars as pl

from nag_core.freshness import CODE_VERSIONS
from nag_core.step_result import StepResult


def _markdown_table(frame: pl.DataFrame, max_rows: int = 20) -> str:
    frame = frame.head(max_rows)
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *body])


def _value(v):
    if isinstance(v, (dict, list)):
        return dg.MetadataValue.json(v)
    if isinstance(v, str) and v.startswith("/"):
        return dg.MetadataValue.path(v)
    return v


def to_result(result: StepResult, checks: Sequence[tuple] = ()) -> dg.MaterializeResult:
    """``checks`` are (name, Check) or (name, Check, "warn") for checks that only warn."""
    metadata = {k: _value(v) for k, v in result.metadata.items()}
    if result.preview is not None:
        metadata["preview"] = dg.MetadataValue.md(_markdown_table(result.preview))
    if result.plot_png is not None:
        encoded = base64.b64encode(result.plot_png).decode()
        metadata["plot"] = dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")
    check_results = []
    for name, (ok, desc, meta), *level in checks:
        severity = dg.AssetCheckSeverity.WARN if level == ["warn"] else dg.AssetCheckSeverity.ERROR
        check_results.append(dg.AssetCheckResult(check_name=name, passed=ok, description=desc, metadata=meta, severity=severity))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.data_version),
                                check_results=check_results)


def code_version(asset: str, settings_hash: str) -> str:
    """Code version plus the hash of the settings the asset reads, so edits to nag.yaml show as stale."""
    return f"{CODE_VERSIONS[asset]}-{settings_hash}" if settings_hash else CODE_VERSIONS[asset]
