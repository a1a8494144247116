"""Raw pool and deduplicated pool, one partition per shard.

A run may cover a range of shards (a backfill, or ``nag-select run`` batching shards):
one Dagster run costs about as much bookkeeping as the small shard it processes, so
batching is what keeps thousands of shards cheap. Shards are processed in key order,
each exactly as a single-shard run would (later shards see earlier shards' rows).
"""

import dagster as dg

from nag_assets.partitions import shards
from nag_assets.results import code_version, to_result
from nag_assets.sources import pool_files
from nag_core import checks, pool_steps
from nag_core.settings import Settings
from resources import NagHomeResource


# At most this many shards per run launched by a backfill, so one failure redoes a bounded batch.
SHARD_BATCHES = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)


def each_shard(context: dg.AssetExecutionContext, nag_home: NagHomeResource, step) -> dg.MaterializeResult:
    """Run ``step(state, shard)`` for every shard of the run; a range gets per-shard metadata and merged checks.

    Dagster records one materialization per partition of a range run, each with the
    metadata added for its key; the data version of each shard is in its metadata
    (``nag_data_version``), since a range run carries one data version for all.
    """
    keys = context.partition_keys
    outcomes = []
    for shard in keys:
        result, shard_checks = step(nag_home.state(), shard)
        outcomes.append((shard, result, shard_checks))
    nag_home.warehouse().refresh_views()
    if len(keys) == 1:
        _, result, shard_checks = outcomes[0]
        return to_result(result, shard_checks)
    for shard, result, _ in outcomes:
        single = to_result(result)
        context.add_asset_metadata({**single.metadata, "nag_data_version": result.data_version}, partition_key=shard)
    return dg.MaterializeResult(check_results=_merged_checks([(shard, c) for shard, _, c in outcomes]))


def _merged_checks(outcomes: list[tuple[str, list]]) -> list[dg.AssetCheckResult]:
    """One result per check for a range run (Dagster takes one per check and run): passed when every shard passed."""
    by_name: dict[str, tuple[list, list]] = {}
    for shard, shard_checks in outcomes:
        for name, (ok, desc, _), *level in shard_checks:
            by_name.setdefault(name, (level, []))[1].append((shard, ok, desc))
    merged = []
    for name, (level, rows) in by_name.items():
        failed = [(shard, desc) for shard, ok, desc in rows if not ok]
        text = f"{len(rows) - len(failed)} of {len(rows)} shards passed" + \
            ("; " + "; ".join(f"{shard}: {desc}" for shard, desc in failed[:5]) if failed else "")
        merged.append(dg.AssetCheckResult(
            check_name=name, passed=not failed, description=text,
            metadata={"shards": len(rows), "failed_shards": dg.MetadataValue.json([s for s, _ in failed])},
            severity=dg.AssetCheckSeverity.WARN if level == ["warn"] else dg.AssetCheckSeverity.ERROR))
    return merged


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    # With decontamination on, every target's examples decide removals, so lineage shows them.
    decontamination_deps = [dg.AssetDep("target_examples", partition_mapping=dg.AllPartitionMapping())] \
        if settings.dedup.decontaminate else []

    @dg.asset(
        partitions_def=shards, group_name="pool", kinds={"parquet", "duckdb"}, deps=[pool_files],
        code_version=code_version("raw_pool", settings.hash_for("raw_pool")), backfill_policy=SHARD_BATCHES,
        check_specs=[dg.AssetCheckSpec("no_silent_drops", asset="raw_pool",
                                       description="Every row of the shard is a document or a quarantined row with a reason.")],
        description="Validated documents of one shard (warehouse table `documents`); rejected rows go to `quarantine` with a reason.",
    )
    def raw_pool(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        def step(state, shard):
            result = pool_steps.raw_pool(state, shard, context.run.run_id, context.log.info)
            return result, [("no_silent_drops", checks.no_silent_drops(state, shard, result.metadata["rows"]))]

        return each_shard(context, nag_home, step)

    @dg.asset(
        partitions_def=shards, group_name="pool", kinds={"parquet", "duckdb"},
        deps=[raw_pool, *decontamination_deps],
        code_version=code_version("dedup_pool", settings.hash_for("dedup_pool")),
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec("kept_plus_removed_equals_input", asset="dedup_pool"),
                     dg.AssetCheckSpec("one_keeper_per_cluster", asset="dedup_pool"),
                     dg.AssetCheckSpec("removal_rate_within_bound", asset="dedup_pool")],
        backfill_policy=SHARD_BATCHES,
        description="Documents kept after exact dedup, MinHash near-dedup and optional decontamination (`pool_kept`); "
                    "every removal, with the document kept in its place, is audited in `dedup_removed`.",
    )
    def dedup_pool(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        def step(state, shard):
            result = pool_steps.dedup_pool(state, shard, context.run.run_id, context.log.info)
            return result, [("kept_plus_removed_equals_input", checks.dedup_accounts_for_input(state, shard)),
                            ("one_keeper_per_cluster", checks.one_keeper_per_cluster(state, shard)),
                            ("removal_rate_within_bound", checks.removal_rate_within_bound(state, shard), "warn")]

        return each_shard(context, nag_home, step)

    return [raw_pool, dedup_pool]
