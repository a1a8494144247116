"""Raw pool and deduplicated pool, one partition per shard."""

import dagster as dg

from nag_assets.partitions import shards
from nag_assets.results import code_version, to_result
from nag_assets.sources import pool_files
from nag_core import checks, pool_steps
from nag_core.settings import Settings
from resources import NagHomeResource


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    # With decontamination on, every target's examples decide removals, so lineage shows them.
    decontamination_deps = [dg.AssetDep("target_examples", partition_mapping=dg.AllPartitionMapping())] \
        if settings.dedup.decontaminate else []

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
        partitions_def=shards, group_name="pool", kinds={"parquet", "duckdb"},
        deps=[raw_pool, *decontamination_deps],
        code_version=code_version("dedup_pool", settings.hash_for("dedup_pool")),
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec("kept_plus_removed_equals_input", asset="dedup_pool"),
                     dg.AssetCheckSpec("one_keeper_per_cluster", asset="dedup_pool"),
                     dg.AssetCheckSpec("removal_rate_within_bound", asset="dedup_pool")],
        description="Documents kept after exact dedup, MinHash near-dedup and optional decontamination (`pool_kept`); "
                    "every removal, with the document kept in its place, is audited in `dedup_removed`.",
    )
    def dedup_pool(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = pool_steps.dedup_pool(state, context.partition_key, context.run.run_id, context.log.info)
        shard = context.partition_key
        nag_home.warehouse().refresh_views()
        return to_result(result, [("kept_plus_removed_equals_input", checks.dedup_accounts_for_input(state, shard)),
                                  ("one_keeper_per_cluster", checks.one_keeper_per_cluster(state, shard)),
                                  ("removal_rate_within_bound", checks.removal_rate_within_bound(state, shard), "warn")])

    return [raw_pool, dedup_pool]
