"""Materialise everything stale, in process, recording each run in the Dagster instance.

Stage by stage, in graph order, the runner asks ``nag_core.freshness`` which partitions
are stale and launches one Dagster run per stale partition. Runs land in the instance
at DAGSTER_HOME, so ``dagster dev`` on the same DAGSTER_HOME shows them. A partition
that fails is reported; its downstream keeps its last good inputs (or waits, if it
has none), and other partitions go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from nag_assets.definitions import build_definitions
from nag_assets.graph_assets import JOB_OF
from nag_core.freshness import DIMENSIONS, STAGES, State, split_key
from nag_core.home import Home
from nag_core.warehouse import Warehouse


# Step logs stay in the instance (and the UI); the terminal gets the runner's own lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunReport:
    materialized: list[tuple[str, str]] = field(default_factory=list)  # (asset, partition)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (asset, partition, message)
    seconds: float = 0.0


def register_partitions(instance: dg.DagsterInstance, state: State) -> None:
    for name, values in (("shards", state.shards), ("targets", state.targets), ("models", state.models)):
        known = set(instance.get_dynamic_partitions(name))
        new = [v for v in sorted(values) if v not in known]
        if new:
            instance.add_dynamic_partitions(name, new)


def _dagster_key(asset: str, key: str) -> str:
    return key if len(DIMENSIONS[asset]) == 1 else dg.MultiPartitionKey(split_key(asset, key))


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The user's error, not Dagster's wrapper around it: the innermost cause."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip()
    return "run failed"


def run_stale(home: Path, instance: dg.DagsterInstance, device: str | None = None, log=print) -> RunReport:
    start = time.perf_counter()
    defs = build_definitions(home, device)
    state = State(Home(home))
    register_partitions(instance, state)
    report = RunReport()
    jobs = {name: defs.resolve_job_def(job.name) for name, job in JOB_OF.items()}
    for asset in STAGES:
        state.forget_ledger()
        for key in state.stale(asset):
            log(f"materialising {asset}[{key}]")
            result = jobs[asset].execute_in_process(
                instance=instance, partition_key=_dagster_key(asset, key), asset_selection=[dg.AssetKey(asset)],
                raise_on_error=False, tags={"nag/runner": "nag-select run"}, run_config=QUIET,
            )
            if result.success:
                report.materialized.append((asset, key))
            else:
                message = _failure_message(result)
                report.failures.append((asset, key, message))
                log(f"FAILED {asset}[{key}]: {message}")
    Warehouse(home).refresh_views()
    report.seconds = time.perf_counter() - start
    return report
