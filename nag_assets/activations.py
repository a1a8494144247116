"""Activation cache: each kept document's top-K neurons per layer, per shard × model."""

import dagster as dg

from nag_assets.partitions import eager_ignoring, shard_x_model
from nag_assets.results import code_version, to_result
from nag_assets.sources import model_checkpoints
from nag_core import checks, pool_steps
from nag_core.settings import Settings
from resources import ModelResource, NagHomeResource


def build(settings: Settings, dedup_pool: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=shard_x_model, group_name="activations", kinds={"pytorch", "parquet"}, pool="model",
        deps=[
            dg.AssetDep(dedup_pool, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="shard")),
            dg.AssetDep(model_checkpoints, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")),
        ],
        code_version=code_version("activation_cache", settings.hash_for("activations")),
        automation_condition=eager_ignoring("model_checkpoints"),
        check_specs=[dg.AssetCheckSpec("covers_every_document", asset="activation_cache")],
        description="Top-K FFN neurons per layer (uint16 indices + impact values) of every kept document, "
                    "NAG_HOME/cache/activations/<model>/<shard>.parquet.",
    )
    def activation_cache(context: dg.AssetExecutionContext, nag_home: NagHomeResource, models: ModelResource) -> dg.MaterializeResult:
        state = nag_home.state()
        result = pool_steps.activation_cache(state, models.pool(), context.partition_key, context.run.run_id, context.log.info)
        return to_result(result, [("covers_every_document", checks.cache_covers_shard(state, context.partition_key))])

    return [activation_cache]
