"""Recipe subsets: one partition per ``NAG_HOME/recipes/<name>.yaml``, reading cached signals only."""

import dagster as dg

from nag_assets.partitions import ALL, recipes
from nag_assets.results import code_version, to_result
from nag_assets.sources import recipe_files
from nag_core import checks, recipe_steps
from resources import NagHomeResource


def build(signal_assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=recipes, group_name="selection", kinds={"parquet", "duckdb"},
        deps=[recipe_files, *(dg.AssetDep(a, partition_mapping=ALL) for a in signal_assets)],
        code_version=code_version("recipe_subset", ""),
        check_specs=[dg.AssetCheckSpec("respects_budget", asset="recipe_subset")],
        description="The documents a recipe selects (filter, fuse, balance, select over the `signals` table): "
                    "NAG_HOME/subsets/<recipe>__recipe.parquet, its manifest with the provenance of every signal read, "
                    "and the decision trail in `subset_decisions` / `subset_signal_values` (see `nag-select explain`).",
    )
    def recipe_subset(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = recipe_steps.recipe_subset(state, context.partition_key, context.run.run_id, context.log.info)
        nag_home.warehouse().refresh_views()
        name = recipe_steps.recipe_subset_name(context.partition_key)
        return to_result(result, [("respects_budget", checks.subset_respects_budget(state, name))])

    return [recipe_subset]
