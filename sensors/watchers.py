"""Sensors for new pool shards, new or changed targets, and new models.

Each sensor registers new dynamic partitions and requests only the first assets the
change touches; the eager automation conditions on downstream assets carry the work on
as each step lands (a new shard: extract it, then rescore and reselect).

Cursor: JSON of ``{name: stamp}`` where the stamp is built from file names, mtimes and
sizes. Every tick looks at every input, so nothing is skipped however many arrive
between ticks. A changed stamp is then checked against the freshness planner: only a
partition that is really stale (new, or its content changed since it was built, by
``nag-select run`` or a run before) gets a request, and its ``run_key`` is derived from
the content, so a touched-but-identical file, or a lost cursor, never repeats work.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from nag_assets.graph_assets import activations_job, pool_job, recipe_job, target_job
from nag_core.freshness import partition_key, split_key
from nag_core.hashing import digest
from resources import NagHomeResource

TICK_SECONDS = 30


def _stamp(paths: list[Path]) -> str:
    return digest([(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(paths)])


def _changed(context: dg.SensorEvaluationContext, current: dict[str, str]) -> tuple[list[str], str]:
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(name for name, stamp in current.items() if previous.get(name) != stamp)
    return changed, json.dumps(current, sort_keys=True)


def _replacing(state, asset: str, key: str) -> str:
    """The fingerprint of the build a request replaces: content that returns to an earlier
    version (A, B, then A again) is a new key, while a repeated tick for the same change is not."""
    row = state.ledger.get((asset, key))
    return row["fingerprint"] if row else "new"


def _add(context: dg.SensorEvaluationContext, partitions: str, names: list[str]) -> list:
    known = set(context.instance.get_dynamic_partitions(partitions))
    new = [n for n in names if n not in known]
    return [dg.AddDynamicPartitionsRequest(partitions_def_name=partitions, partition_keys=new)] if new else []


@dg.sensor(minimum_interval_seconds=TICK_SECONDS, job=pool_job,
           default_status=dg.DefaultSensorStatus.RUNNING)
def pool_sensor(context: dg.SensorEvaluationContext, nag_home: NagHomeResource) -> dg.SensorResult:
    """New or changed shard: register it, then validate and dedup that shard only."""
    state = nag_home.state()
    files = state.home.shard_files()
    changed, cursor = _changed(context, {name: _stamp([path]) for name, path in files.items()})
    requests = [dg.RunRequest(run_key=f"shard:{s}:{state.shards[s]}:{_replacing(state, 'raw_pool', s)}", partition_key=s)
                for s in state.stale("raw_pool", changed)]
    return dg.SensorResult(run_requests=requests, cursor=cursor, dynamic_partitions_requests=_add(context, "shards", list(files)))


@dg.sensor(minimum_interval_seconds=TICK_SECONDS, job=target_job,
           default_status=dg.DefaultSensorStatus.RUNNING)
def target_sensor(context: dg.SensorEvaluationContext, nag_home: NagHomeResource) -> dg.SensorResult:
    """New or changed target: rebuild its examples, activations and graph for every model."""
    state = nag_home.state()
    folders = state.home.target_dirs()
    changed, cursor = _changed(context, {t: _stamp([p for p in d.rglob("*") if p.is_file()]) for t, d in folders.items()})
    keys = [partition_key("target_examples", model=m, target=t) for t in changed for m in sorted(state.models)]
    requests = [dg.RunRequest(run_key=f"target:{key}:{state.targets[split_key('target_examples', key)['target']]}:"
                                      f"{_replacing(state, 'target_examples', key)}",
                              partition_key=dg.MultiPartitionKey(split_key("target_examples", key)))
                for key in state.stale("target_examples", keys)]
    partitions = _add(context, "targets", list(folders)) + _add(context, "models", sorted(state.models))
    return dg.SensorResult(run_requests=requests, cursor=cursor, dynamic_partitions_requests=partitions)


@dg.sensor(minimum_interval_seconds=TICK_SECONDS, jobs=[activations_job, target_job],
           default_status=dg.DefaultSensorStatus.RUNNING)
def model_sensor(context: dg.SensorEvaluationContext, nag_home: NagHomeResource) -> dg.SensorResult:
    """New model: extract every deduplicated shard and every target with it."""
    state = nag_home.state()
    changed, cursor = _changed(context, {name: ref.fingerprint for name, ref in state.models.items()})
    requests = []
    for model in changed:
        fingerprint = state.models[model].fingerprint
        caches = [partition_key("activation_cache", model=model, shard=s) for s in sorted(state.shards)]
        targets = [partition_key("target_examples", model=model, target=t) for t in sorted(state.targets)]
        for job, asset, keys in ((activations_job, "activation_cache", caches), (target_job, "target_examples", targets)):
            requests += [dg.RunRequest(run_key=f"model:{fingerprint}:{key}:{_replacing(state, asset, key)}", job_name=job.name,
                                       partition_key=dg.MultiPartitionKey(split_key(asset, key)))
                         for key in state.stale(asset, keys)]
    return dg.SensorResult(run_requests=requests, cursor=cursor,
                           dynamic_partitions_requests=_add(context, "models", sorted(state.models)))



@dg.sensor(minimum_interval_seconds=TICK_SECONDS, job=recipe_job, default_status=dg.DefaultSensorStatus.RUNNING)
def recipe_sensor(context: dg.SensorEvaluationContext, nag_home: NagHomeResource) -> dg.SensorResult:
    """New or edited recipe file: rematerialise just that recipe's subset.

    A malformed recipe is still requested: its run fails with the error naming the
    file, step and key, which is where a user looks (the run's failure in the UI).
    """
    state = nag_home.state()
    files = state.home.recipe_files()
    changed, cursor = _changed(context, {name: _stamp([path]) for name, path in files.items()})
    requests = [dg.RunRequest(run_key=f"recipe:{name}:{state.fingerprint('recipe_subset', name)}:"
                                      f"{_replacing(state, 'recipe_subset', name)}", partition_key=name)
                for name in state.stale("recipe_subset", changed)]
    return dg.SensorResult(run_requests=requests, cursor=cursor,
                           dynamic_partitions_requests=_add(context, "recipes", list(files)))
