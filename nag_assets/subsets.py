"""Selected subsets: one per target × model, and the equal-budget mixture per model."""

import dagster as dg

from nag_assets.partitions import eager_ignoring, models, target_x_model
from nag_assets.results import code_version, to_result
from nag_core import checks, selection_steps
from nag_core.freshness import split_key
from nag_core.home import MIXTURE
from nag_core.settings import Settings
from resources import NagHomeResource


def build(settings: Settings, influence_scores: dg.AssetsDefinition, dedup_pool: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    cv = code_version("selected_subset", settings.hash_for("selection"))

    @dg.asset(
        partitions_def=target_x_model, group_name="selection", kinds={"parquet", "duckdb"},
        deps=[influence_scores, dg.AssetDep(dedup_pool, partition_mapping=dg.AllPartitionMapping())],
        code_version=cv, automation_condition=eager_ignoring("dedup_pool"),
        check_specs=[dg.AssetCheckSpec("respects_budget", asset="selected_subset")],
        description="Highest-scoring documents up to the token budget: NAG_HOME/subsets/<target>__<model>.parquet, "
                    "its manifest, and rows in `subsets` and `subset_members`.",
    )
    def selected_subset(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = selection_steps.selected_subset(state, context.partition_key, context.run.run_id, context.log.info)
        p = split_key("selected_subset", context.partition_key)
        nag_home.warehouse().refresh_views()
        return to_result(result, [("respects_budget", checks.subset_respects_budget(state, f"{p['target']}__{p['model']}"))])

    @dg.asset(
        partitions_def=models, group_name="selection", kinds={"parquet", "duckdb"},
        deps=[dg.AssetDep(influence_scores, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")),
              dg.AssetDep(dedup_pool, partition_mapping=dg.AllPartitionMapping())],
        code_version=code_version("mixture_subset", settings.hash_for("selection")),
        automation_condition=eager_ignoring("dedup_pool"),
        check_specs=[dg.AssetCheckSpec("respects_budget", asset="mixture_subset")],
        description="Equal-budget multi-target mixture (paper §3.5): each of M targets keeps fraction/M of pool tokens.",
    )
    def mixture_subset(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = selection_steps.mixture_subset(state, context.partition_key, context.run.run_id, context.log.info)
        nag_home.warehouse().refresh_views()
        return to_result(result, [("respects_budget", checks.subset_respects_budget(state, f"{MIXTURE}__{context.partition_key}"))])

    return [selected_subset, mixture_subset]

