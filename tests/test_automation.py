"""Eager automation carries work downstream of the sensors' runs, one stage at a time."""

import dagster as dg
import pytest
from conftest import tiny_home

from nag_assets.definitions import build_definitions
from nag_assets.graph_assets import JOB_OF
from nag_core.freshness import DIMENSIONS

pytestmark = pytest.mark.slow


def requested(defs, result):
    graph = defs.resolve_asset_graph()
    return {k.to_user_string(): sorted(str(p) for p in result.get_requested_partitions(k))
            for k in graph.materializable_asset_keys if result.get_num_requested(k)}


def test_new_shard_and_target_flow_downstream_without_waiting_on_external_inputs(tmp_path):
    home = tiny_home(tmp_path / "home", ["Add 2 and 3 to get 5.", "The tenant shall pay rent monthly."],
                     {"math": "Add 4 and 4 to get 8."})
    (home / "nag.yaml").write_text("budget_fraction: 1.0\n")  # 20% of two short documents would not fit one
    defs = build_definitions(home, "cpu")
    instance = dg.DagsterInstance.ephemeral()
    for name, keys in (("shards", ["s1"]), ("models", ["minilm-l6"]), ("targets", ["math"])):
        instance.add_dynamic_partitions(name, keys)

    def run(job, key, assets=None):
        selection = [dg.AssetKey(a) for a in assets] if assets else None
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key,
                                                            asset_selection=selection).success

    def run_requested(tick):
        for asset, keys in requested(defs, tick).items():
            for key in keys:
                dims = DIMENSIONS[asset]
                part = dg.MultiPartitionKey(dict(zip(dims, key.split("|")))) if len(dims) > 1 else key
                run(JOB_OF[asset].name, part, [asset])

    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    run("pool_job", "s1")  # what pool_sensor launches
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert requested(defs, tick) == {"activation_cache": ["minilm-l6|s1"], "embedding_cache": ["minilm-l6|s1"],
                                     "quality_signals": ["s1"]}
    run_requested(tick)
    run("target_job", dg.MultiPartitionKey({"model": "minilm-l6", "target": "math"}))  # what target_sensor launches
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    # Scores and the subset share a partitioning, so they go in one run, in order; the other signals follow too.
    assert requested(defs, tick) == {"influence_scores": ["minilm-l6|math"], "selected_subset": ["minilm-l6|math"],
                                     "embedding_scores": ["minilm-l6|math"], "dsir_scores": ["math"], "bm25_scores": ["math"]}
    run("reselect_job", dg.MultiPartitionKey({"model": "minilm-l6", "target": "math"}))
    for asset, key in (("embedding_scores", dg.MultiPartitionKey({"model": "minilm-l6", "target": "math"})),
                       ("dsir_scores", "math"), ("bm25_scores", "math")):
        run(JOB_OF[asset].name, key, [asset])
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(defs, tick) == {"mixture_subset": ["minilm-l6"]}
    run("mixture_job", "minilm-l6")
    assert requested(defs, dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)) == {}
