"""Materialise everything stale, recording each run in the Dagster instance.

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

By default every run executes in this process, one after another. With ``parallel=N``
(``nag-select run --parallel N``) up to N runs of a stage go at once, each orchestrated
in one of N worker processes and executed by Dagster's multiprocess executor (its step
in a child process). Stages still go in graph order, and the shard stages still go one
range at a time: a shard decides docid clashes and cross-shard duplicates against what
the shards before it kept, so overlapping them would change what is kept. Steps that
load a model take a slot of the Dagster concurrency pool ``model`` (``MODEL_POOL``),
whose limit ``model_slots`` sets in the instance; Dagster holds a step until a slot is
free, across every run on the instance.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import dagster as dg

from nag_core.errors import NagInputError
from nag_core.freshness import DIMENSIONS, STAGES, State, split_key
from nag_core.home import Home
from nag_core.storage import process_private
from nag_core.warehouse import Warehouse


# Step logs stay in the instance (and the UI); the terminal gets the runner's own lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Shard-partitioned assets whose body loops over a partition range; their runs never overlap (see above).
BATCHED = ("raw_pool", "dedup_pool")
MAX_BATCH = 100
# Dagster's run tags for a partition range (dagster._core.storage.tags).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
RUNNER_TAG = "nag/runner"
# Which process orchestrates a run: a run whose process is gone holds its pool slots for nobody.
PID_TAG, HOST_TAG = "nag/pid", "nag/host"
WORKER_LOG = "nag-select-workers.log"  # in the instance's folder: the output of the last parallel run's workers
MODEL_POOL = "model"  # the Dagster concurrency pool of the assets that load a model (``pool="model"``)
# Parallel runs: the multiprocess executor, its step processes forked from a server that has
# already imported the heavy modules (a spawned process would import torch for every step).
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 1, "start_method": {"forkserver": {
    "preload_modules": ["nag_select.runner", "nag_core.pool_steps", "nag_core.target_steps", "nag_assets.definitions"]}}}}}}


def quiet_warnings() -> None:
    """Dagster's beta/preview notices about the assets' own definitions, every time they are built."""
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    warnings.filterwarnings("ignore", message=".*is currently in preview.*")


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


def _failure_message(result: dg.ExecuteInProcessResult | dg.ExecuteJobResult) -> str:
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


def _alive(run: dg.DagsterRun) -> bool:
    """Whether the process that orchestrates a run tagged by this runner still exists (other runs: assume so)."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if pid is None or host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def free_orphaned_slots(instance: dg.DagsterInstance, log=print) -> None:
    """Release concurrency-pool slots held by runs that will never release them.

    A run killed mid-step (SIGKILL, a crashed machine) keeps its slot, and with a pool
    limit set every later model step would wait for it forever. Slots of runs that are
    finished or gone, and of this runner's runs whose process is dead, are freed; those
    runs are marked failed, as Dagster's run monitoring would.
    """
    storage = instance.event_log_storage
    if instance.is_ephemeral or not storage.supports_global_concurrency_limits:
        return
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished and _alive(run):
            continue
        storage.free_concurrency_slots_for_run(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_failed(run, "the process that ran it is gone; its concurrency slots were freed")
        log(f"freed the concurrency slots still held by run {run_id}, which is over or whose process is gone")


def set_model_slots(instance: dg.DagsterInstance, slots: int | None) -> int | None:
    """Limit of the ``model`` pool: ``slots`` if given, else the instance's limit, else 1."""
    if slots is not None and slots < 1:
        raise NagInputError(f"--model-slots {slots}: give 1 or more (steps that may load a model at once)")
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return None
    if slots is None:
        limit = storage.get_concurrency_info(MODEL_POOL).limit
        if limit is not None:
            return limit
        slots = 1
    storage.set_concurrency_slots(MODEL_POOL, slots)
    return slots


def stage_job(home: str, device: str | None, job_name: str) -> dg.JobDefinition:
    """A job rebuilt by name in another process: the reconstructable target of a parallel run."""
    quiet_warnings()
    from nag_assets.definitions import build_definitions

    return build_definitions(Path(home), device).resolve_job_def(job_name)


_WORKER: dict = {}


def _worker_init(instance_ref, log_path: str) -> None:
    """A worker's output, and its step processes', goes to ``log_path``: Dagster's step-process start
    lines and library progress bars would bury the runner's own lines (failures still reach them)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    quiet_warnings()
    _WORKER["instance"] = dg.DagsterInstance.from_ref(instance_ref)


def _execute_run(home: str, device: str | None, asset: str, job_name: str, tags: dict[str, str]) -> tuple[bool, str]:
    """One Dagster run, orchestrated in this worker process, its step in a child process."""
    job = dg.build_reconstructable_job("nag_select.runner", "stage_job", reconstructable_args=(home, device, job_name))
    tags = {**tags, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    result = dg.execute_job(job, _WORKER["instance"], run_config={**QUIET, **MULTIPROCESS}, tags=tags,
                            asset_selection=[dg.AssetKey(asset)])
    return result.success, "" if result.success else _failure_message(result)


Execute = Callable[[str, list[str]], "Future | tuple[bool, str]"]


def run_stale(home: Path, instance: dg.DagsterInstance, device: str | None = None, log=print,
              only: Sequence[str] | None = None, batch: bool = True, parallel: int = 1,
              model_slots: int | None = None) -> RunReport:
    """``only``: run just these stages (others are left as they are); ``batch``: shard stages in ranges;
    ``parallel``: up to this many runs at once (worker processes, multiprocess executor);
    ``model_slots``: with ``parallel``, the limit of the ``model`` concurrency pool."""
    from nag_assets.definitions import build_definitions
    from nag_assets.graph_assets import JOB_OF

    start = time.perf_counter()
    stages = check_stages(only) if only is not None else list(STAGES)
    if parallel < 1:
        raise NagInputError(f"--parallel {parallel}: give 1 or more (Dagster runs at once)")
    if parallel > 1 and instance.is_ephemeral:
        raise NagInputError("--parallel needs a Dagster instance on disk (set DAGSTER_HOME): "
                            "the worker processes record their runs there")
    if parallel > 1 and process_private(Home(home).outputs):
        raise NagInputError(f"--parallel {parallel}: storage.url {Home(home).outputs} is private to one process, so "
                            "worker processes would not see each other's outputs. Run without --parallel, "
                            "or put storage on a shared filesystem (a path, s3://...).")
    defs = build_definitions(home, device)
    state = State(Home(home))
    register_partitions(instance, state)
    free_orphaned_slots(instance, log)
    report = RunReport()
    jobs = {name: defs.resolve_job_def(job.name) for name, job in JOB_OF.items()}

    def tags(asset: str, keys: list[str], runner: str = "nag-select run") -> dict[str, str]:
        own = {RUNNER_TAG: runner, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}  # a worker puts its pid
        return {**own, RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else own

    def in_process(asset: str, keys: list[str]) -> tuple[bool, str]:
        target = {"partition_key": _dagster_key(asset, keys[0])} if len(keys) == 1 else {}
        result = jobs[asset].execute_in_process(instance=instance, asset_selection=[dg.AssetKey(asset)],
                                                raise_on_error=False, run_config=QUIET, tags=tags(asset, keys), **target)
        return result.success, "" if result.success else _failure_message(result)

    def in_worker(asset: str, keys: list[str]) -> Future:
        partitions_def = jobs[asset].partitions_def
        run_tags = tags(asset, keys, f"nag-select run --parallel {parallel}")
        if len(keys) == 1 and partitions_def is not None:  # what execute_in_process derives from partition_key
            run_tags |= partitions_def.get_tags_for_partition_key(keys[0])
        return pool.submit(_execute_run, str(home), device, asset, JOB_OF[asset].name, run_tags)

    def run_stage(asset: str, groups: list[list[str]], execute: Execute, at_once: int) -> None:
        """Each group in its own run, up to ``at_once`` runs in flight; a failed batch retried one shard per run."""
        queue, running = list(groups), {}
        while queue or running:
            while queue and len(running) < at_once:
                keys = queue.pop(0)
                if len(keys) == 1:
                    log(f"materialising {asset}[{keys[0]}]")
                else:
                    log(f"materialising {asset}[{keys[0]} .. {keys[-1]}] ({len(keys)} shards in one run)")
                outcome = execute(asset, keys)
                running[outcome if isinstance(outcome, Future) else _done(outcome)] = keys
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                keys = running.pop(future)
                try:
                    ok, message = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory) fails its partitions
                    ok, message = False, f"the worker process failed: {exc!r}"
                if ok:
                    report.materialized.extend((asset, k) for k in keys)
                elif len(keys) > 1:
                    log(f"the run of {len(keys)} {asset} shards failed; retrying them one per run")
                    queue[:0] = [[k] for k in keys]
                else:
                    report.failures.append((asset, keys[0], message or "run failed"))
                    log(f"FAILED {asset}[{keys[0]}]: {message or 'run failed'}")

    def run_all(execute: Execute, at_once: int) -> None:
        for asset in stages:
            state.forget_ledger()
            stale = state.stale(asset)
            if batch and asset in BATCHED:
                groups = batches(stale, instance.get_dynamic_partitions("shards"))
            else:
                groups = [[key] for key in stale]
            # Shard stages one run at a time: each shard is decided against what the shards before it kept.
            run_stage(asset, groups, execute, 1 if asset in BATCHED else at_once)

    if parallel == 1:
        run_all(in_process, 1)
    else:
        slots = set_model_slots(instance, model_slots)
        worker_log = Path(instance.root_directory) / WORKER_LOG
        worker_log.write_text("")
        log(f"up to {parallel} runs at once (multiprocess executor); {slots or 'unlimited'} model step(s) at once "
            f"(Dagster concurrency pool '{MODEL_POOL}'); worker output: {worker_log}")
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(instance.get_ref(), str(worker_log))) as pool:
            run_all(in_worker, parallel)
    Warehouse(home).refresh_views()
    report.seconds = time.perf_counter() - start
    return report


def _done(outcome: tuple[bool, str]) -> Future:
    future: Future = Future()
    future.set_result(outcome)
    return future
