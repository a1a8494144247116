"""Influence scores: NAG similarity of every kept pool document to each target profile."""

import dagster as dg

from nag_assets.partitions import SAME_MODEL_ALL_SHARDS, target_x_model
from nag_assets.results import code_version, to_result
from nag_core import checks, selection_steps
from nag_core.settings import Settings
from resources import NagHomeResource


def build(settings: Settings, neuron_graph: dg.AssetsDefinition, activation_cache: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=target_x_model, group_name="selection", kinds={"duckdb"},
        deps=[neuron_graph, dg.AssetDep(activation_cache, partition_mapping=SAME_MODEL_ALL_SHARDS)],
        code_version=code_version("influence_scores", settings.hash_for("scores")),
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec("scores_valid", asset="influence_scores")],
        description="Rows of the warehouse `signals` table (signal = nag_similarity for the paper's frequency "
                    "profile, nag_contrastive for `profile: contrastive`) with lineage columns asset, run_id, model, "
                    "target, config_hash. Check `scores_valid`: all finite, and in [0, 1] for the frequency profile.",
    )
    def influence_scores(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = selection_steps.influence_scores(state, context.partition_key, context.run.run_id, context.log.info)
        nag_home.warehouse().refresh_views()
        return to_result(result, [("scores_valid", checks.scores_valid(state, context.partition_key))])

    return [influence_scores]
