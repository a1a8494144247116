"""Sensors and the schedule, evaluated against a real instance and a real data root."""

import json
import os
import time

import dagster as dg
import polars as pl
import pytest
from conftest import tiny_home

from nag_assets.definitions import build_definitions
from resources import NagHomeResource
from sensors import model_sensor, pool_sensor, reselect_schedule, target_sensor


def ctx(instance, home, cursor=None):
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources={"nag_home": NagHomeResource(path=str(home))})


def apply(instance, result):
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


@pytest.fixture
def home(tmp_path):
    return tiny_home(tmp_path / "home", ["a b c", "d e f"], {"t1": "target text"})


def test_pool_sensor_adds_partitions_and_never_skips_or_repeats(home):
    instance = dg.DagsterInstance.ephemeral()
    result = pool_sensor(ctx(instance, home))
    assert [r.partition_key for r in result.run_requests] == ["s1"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["s1"]
    apply(instance, result)
    cursor = result.cursor

    again = pool_sensor(ctx(instance, home, cursor))
    assert again.run_requests == [] and again.dynamic_partitions_requests == []

    # Two shards arriving between ticks are both seen.
    for name in ("s2", "s3"):
        pl.DataFrame({"text": [f"{name} text"]}).write_parquet(home / "pool" / f"{name}.parquet")
    later = pool_sensor(ctx(instance, home, cursor))
    assert [r.partition_key for r in later.run_requests] == ["s2", "s3"]
    assert later.run_requests[0].job_name in (None, "pool_job")

    # Touching a file re-stamps it, but the content-derived run key is unchanged: Dagster dedups the run.
    first_key = later.run_requests[0].run_key
    time.sleep(0.01)
    os.utime(home / "pool" / "s2.parquet")
    touched = pool_sensor(ctx(instance, home, later.cursor))
    assert [r.run_key for r in touched.run_requests] == [first_key]


def test_target_sensor_requests_target_chain_for_every_model(home):
    instance = dg.DagsterInstance.ephemeral()
    (home / "models").mkdir()
    result = target_sensor(ctx(instance, home))
    keys = [r.partition_key for r in result.run_requests]
    assert keys == [dg.MultiPartitionKey({"model": "minilm-l6", "target": "t1"})]
    added = {r.partitions_def_name: list(r.partition_keys) for r in result.dynamic_partitions_requests}
    assert added == {"targets": ["t1"], "models": ["minilm-l6"]}
    run_key = result.run_requests[0].run_key

    (home / "targets" / "t1" / "t.jsonl").write_text('{"text": "edited target text"}\n')
    changed = target_sensor(ctx(instance, home, result.cursor))
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != run_key


def test_model_sensor_requests_extraction_of_deduplicated_shards(home, tmp_path):
    from nag_core.freshness import State
    from nag_core.home import Home
    from nag_core.step_result import record

    instance = dg.DagsterInstance.ephemeral()
    state = State(Home(home))
    record(state, "dedup_pool", "s1", "fp", "dv", "run")  # shard s1 is deduplicated
    result = model_sensor(ctx(instance, home))
    jobs = sorted((r.job_name, str(r.partition_key)) for r in result.run_requests)
    assert jobs == [("activations_job", "minilm-l6|s1"), ("target_job", "minilm-l6|t1")]
    assert model_sensor(ctx(instance, home, result.cursor)).run_requests == []


def test_sensors_request_nothing_for_inputs_already_built(demo_copy):
    """A fresh cursor over a data root that `nag-select run` already built: partitions, but no runs."""
    instance = dg.DagsterInstance.ephemeral()
    for sensor in (pool_sensor, target_sensor, model_sensor):
        result = sensor(ctx(instance, demo_copy))
        assert result.run_requests == [], sensor.name
        apply(instance, result)
    assert sorted(instance.get_dynamic_partitions("shards")) == ["shard-000", "shard-001", "shard-002"]
    # A new model directory, though, is extracted for every shard and every target.
    import shutil

    from nag_core.models import default_model_path

    shutil.copytree(default_model_path(), demo_copy / "models" / "minilm-copy")
    result = model_sensor(ctx(instance, demo_copy))
    assert sorted((r.job_name, str(r.partition_key)) for r in result.run_requests) == \
        [("activations_job", f"minilm-copy|shard-00{i}") for i in range(3)] + \
        [("target_job", f"minilm-copy|{t}") for t in ("clinical_medicine", "grade_school_math", "python_code")]


def test_schedule_reselects_only_stale_partitions(built_demo, demo_copy):
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_schedule_context(instance=instance, resources={"nag_home": NagHomeResource(path=str(demo_copy))})
    assert isinstance(reselect_schedule(context), dg.SkipReason)
    (demo_copy / "nag.yaml").write_text("budget_fraction: 0.3\n")
    requests = reselect_schedule(context)
    assert sorted(str(r.partition_key) for r in requests) == [
        "minilm-l6|clinical_medicine", "minilm-l6|grade_school_math", "minilm-l6|python_code"]
    assert all(r.asset_selection == [dg.AssetKey("selected_subset")] for r in requests)


def test_definitions_load_with_assets_checks_jobs_sensors(home):
    defs = build_definitions(home)
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"raw_pool", "dedup_pool", "activation_cache", "target_examples", "target_activations", "neuron_graph",
            "influence_scores", "selected_subset", "mixture_subset", "pool_files"} <= keys
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("neuron_graph") in graph.get(dg.AssetKey("influence_scores")).parent_keys
    assert len(graph.asset_check_keys) == 15  # 8 on the NAG chain, one per other signal family (distilled too), one on recipes
    assert {s.name for s in defs.sensors} == {"pool_sensor", "target_sensor", "model_sensor", "recipe_sensor",
                                              "nag_automation"}
    # A setting change shows up as a new code version on exactly the assets that read it.
    before = {k: graph.get(k).code_version for k in graph.materializable_asset_keys}
    (home / "nag.yaml").write_text(json.dumps({"top_k": 10}))
    after_graph = build_definitions(home).resolve_asset_graph()
    changed = {k.to_user_string() for k in before if after_graph.get(k).code_version != before[k]}
    assert changed == {"activation_cache", "target_activations", "neuron_graph", "influence_scores"}
