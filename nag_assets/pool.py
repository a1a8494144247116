"""Raw pool and deduplicated pool, one partition per shard."""

import dagster as dg

from nag_assets.partitions import shards
from nag_assets.results import code_version, to_result
from nag_assets.sources import pool_files
from nag_core import checks, pool_steps
from nag_core.settings import Settings
from resources import NagHomeResource


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=shards, group_name="pool", kinds={"parquet", "duckdb"}, deps=[pool_files],
        code_version=code_version("raw_pool", settings.hash_for("raw_pool")),
        check_specs=[dg.AssetCheckSpec("no_silent_drops", asset="raw_pool",
                                       description="Every row of the shard is a document or a quarantined row with a reason.")],
        description="Validated documents of one shard (warehouse table `documents`); rejected rows go to `quarantine` with a reason.",
    )
    def raw_pool(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = pool_steps.raw_pool(state, context.partition_key, context.run.run_id, context.log.info)
        check = checks.no_silent_drops(state, context.partition_key, result.metadata["rows"])
        nag_home.warehouse().refresh_views()
        return to_result(result, [("no_silent_drops", check)])

    @dg.asset(
        partitions_def=shards, group_name="pool", kinds={"parquet", "duckdb"}, deps=[raw_pool],
        code_version=code_version("dedup_pool", settings.hash_for("dedup_pool")),
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec("kept_plus_removed_equals_input", asset="dedup_pool")],
        description="Documents kept after exact dedup on a normalised-text hash (`pool_kept`); every removal is audited in `dedup_removed`.",
    )
    def dedup_pool(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = pool_steps.dedup_pool(state, context.partition_key, context.run.run_id, context.log.info)
        check = checks.dedup_accounts_for_input(state, context.partition_key)
        nag_home.warehouse().refresh_views()
        return to_result(result, [("kept_plus_removed_equals_input", check)])

    return [raw_pool, dedup_pool]
