"""Materialise everything stale, in process, recording each run in the Dagster instance.

Stage by stage, in graph order, the runner asks ``nag_core.freshness`` which partitions
are stale and launches Dagster runs for them. Runs land in the instance at
DAGSTER_HOME, so ``dagster dev`` on the same DAGSTER_HOME shows them, one
materialization per partition. A partition that fails is reported; its downstream
keeps its last good inputs (or waits, if it has none), and other partitions go on.

Shard stages (``raw_pool``, ``dedup_pool``) run up to ``MAX_BATCH`` stale shards per
Dagster run, as a partition range: a run has a fixed cost (planning, event storage,
a fresh ``State``) that dwarfs a small shard's work. A range covers every key between
its ends in the instance's order of dynamic partitions, so a batch holds only keys
adjacent in that order. A batch that fails is retried one shard per run, so the
failure names its shard and the other shards still materialise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from nag_assets.definitions import build_definitions
from nag_assets.graph_assets import JOB_OF
from nag_core.errors import NagInputError
from nag_core.freshness import DIMENSIONS, STAGES, State, split_key
from nag_core.home import Home
from nag_core.warehouse import Warehouse


# Step logs stay in the instance (and the UI); the terminal gets the runner's own lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
BATCHED = ("raw_pool", "dedup_pool")  # shard-partitioned assets whose body loops over a partition range
MAX_BATCH = 100
# Dagster's run tags for a partition range (dagster._core.storage.tags).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass
class RunReport:
    materialized: list[tuple[str, str]] = field(default_factory=list)  # (asset, partition)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (asset, partition, message)
    seconds: float = 0.0


def register_partitions(instance: dg.DagsterInstance, state: State) -> None:
    for name, values in (("shards", state.shards), ("targets", state.targets), ("models", state.models),
                         ("recipes", state.recipes)):
        known = set(instance.get_dynamic_partitions(name))
        new = [v for v in sorted(values) if v not in known]
        if new:
            instance.add_dynamic_partitions(name, new)


def _dagster_key(asset: str, key: str) -> str | None:
    dims = len(DIMENSIONS[asset])
    return None if dims == 0 else key if dims == 1 else dg.MultiPartitionKey(split_key(asset, key))


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The user's error, not Dagster's wrapper around it: the innermost cause."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip()
    return "run failed"


def check_stages(names: Sequence[str]) -> list[str]:
    """The named stages in graph order; a clear error names the unknown ones and lists the valid ones."""
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise NagInputError(f"--only: unknown stage(s) {', '.join(unknown) or '(none given)'}; "
                            f"valid stages, in graph order: {', '.join(STAGES)}")
    return [s for s in STAGES if s in names]


def batches(keys: Sequence[str], order: Sequence[str], size: int = MAX_BATCH) -> list[list[str]]:
    """``keys`` split into runs of at most ``size`` keys that are adjacent in ``order``."""
    pos = {k: i for i, k in enumerate(order)}
    out: list[list[str]] = []
    for key in sorted(keys, key=pos.__getitem__):
        if out and pos[key] == pos[out[-1][-1]] + 1 and len(out[-1]) < size:
            out[-1].append(key)
        else:
            out.append([key])
    return out


def run_stale(home: Path, instance: dg.DagsterInstance, device: str | None = None, log=print,
              only: Sequence[str] | None = None, batch: bool = True) -> RunReport:
    """``only``: run just these stages (others are left as they are); ``batch``: shard stages in ranges."""
    start = time.perf_counter()
    stages = check_stages(only) if only is not None else list(STAGES)
    defs = build_definitions(home, device)
    state = State(Home(home))
    register_partitions(instance, state)
    report = RunReport()
    jobs = {name: defs.resolve_job_def(job.name) for name, job in JOB_OF.items()}

    def launch(asset: str, keys: list[str]) -> None:
        if len(keys) == 1:
            log(f"materialising {asset}[{keys[0]}]")
            target = {"partition_key": _dagster_key(asset, keys[0]), "tags": {"nag/runner": "nag-select run"}}
        else:
            log(f"materialising {asset}[{keys[0]} .. {keys[-1]}] ({len(keys)} shards in one run)")
            target = {"tags": {"nag/runner": "nag-select run", RANGE_START: keys[0], RANGE_END: keys[-1]}}
        result = jobs[asset].execute_in_process(instance=instance, asset_selection=[dg.AssetKey(asset)],
                                                raise_on_error=False, run_config=QUIET, **target)
        if result.success:
            report.materialized.extend((asset, k) for k in keys)
        elif len(keys) > 1:
            log(f"the run of {len(keys)} {asset} shards failed; retrying them one per run")
            for key in keys:
                launch(asset, [key])
        else:
            message = _failure_message(result)
            report.failures.append((asset, keys[0], message))
            log(f"FAILED {asset}[{keys[0]}]: {message}")

    for asset in stages:
        state.forget_ledger()
        stale = state.stale(asset)
        if batch and asset in BATCHED:
            groups = batches(stale, instance.get_dynamic_partitions("shards"))
        else:
            groups = [[key] for key in stale]
        for keys in groups:
            launch(asset, keys)
    Warehouse(home).refresh_views()
    report.seconds = time.perf_counter() - start
    return report
