"""Partitions: pool shards, targets and models are dynamic, registered as they appear.

Multi-dimensional keys put dimensions in name order, so an activation-cache key is
``<model>|<shard>`` and a target key is ``<model>|<target>``.
"""

import dagster as dg

shards = dg.DynamicPartitionsDefinition(name="shards")
targets = dg.DynamicPartitionsDefinition(name="targets")
models = dg.DynamicPartitionsDefinition(name="models")
recipes = dg.DynamicPartitionsDefinition(name="recipes")

shard_x_model = dg.MultiPartitionsDefinition({"model": models, "shard": shards})
target_x_model = dg.MultiPartitionsDefinition({"model": models, "target": targets})

DEFS_BY_NAME = {"shards": shards, "targets": targets, "models": models, "recipes": recipes}

# Downstream (target, model) reads every shard's cache for the same model.
SAME_MODEL_ALL_SHARDS = dg.MultiPartitionMapping(
    {"model": dg.DimensionPartitionMapping(dimension_name="model", partition_mapping=dg.IdentityPartitionMapping())}
)


ALL = dg.AllPartitionMapping()


def on(dimension: str) -> dg.MultiToSingleDimensionPartitionMapping:
    """Map between a two-dimensional asset and a one-dimensional one through ``dimension``."""
    return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=dimension)


def eager_ignoring(*asset_names: str) -> dg.AutomationCondition:
    """Eager automation that neither waits for nor fires on the named deps.

    External inputs (files, checkpoints) are never materialised, so eager would wait on
    them forever; deps read only for bookkeeping (token counts) must not trigger a
    rerun before the scores they pair with have been refreshed.
    """
    return dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(*asset_names))
