"""The user's inputs as external assets, so lineage starts at the files themselves."""

import dagster as dg

from nag_assets.partitions import models, recipes, shards, targets

pool_files = dg.AssetSpec(
    "pool_files", partitions_def=shards, group_name="inputs", kinds={"parquet"},
    description="Pool shards under NAG_HOME/pool/ (Parquet or JSONL); one shard is one partition.",
)
target_files = dg.AssetSpec(
    "target_files", partitions_def=targets, group_name="inputs", kinds={"json"},
    description="Target example folders under NAG_HOME/targets/<name>/, with an optional target.yaml template.",
)
model_checkpoints = dg.AssetSpec(
    "model_checkpoints", partitions_def=models, group_name="inputs", kinds={"pytorch"},
    description="Frozen Hugging Face checkpoints: the bundled MiniLM-L6 and NAG_HOME/models/<name>/.",
)

recipe_files = dg.AssetSpec(
    "recipe_files", partitions_def=recipes, group_name="inputs", kinds={"yaml"},
    description="Selection recipes under NAG_HOME/recipes/<name>.yaml: filter, fuse, balance and select over cached signals.",
)

SOURCES = [pool_files, target_files, model_checkpoints, recipe_files]
