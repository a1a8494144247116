"""Target examples, their activations and their neuron graph, per target × model."""

import dagster as dg

from nag_assets.partitions import eager_ignoring, target_x_model
from nag_assets.results import code_version, to_result
from nag_assets.sources import model_checkpoints, target_files
from nag_core import target_steps
from nag_core.settings import Settings
from resources import ModelResource, NagHomeResource


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=target_x_model, group_name="targets", kinds={"duckdb"},
        deps=[dg.AssetDep(target_files, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="target"))],
        code_version=code_version("target_examples", ""),
        description="Target examples rendered to text (template from target.yaml), warehouse table `target_examples`.",
    )
    def target_examples(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        result = target_steps.target_examples(nag_home.state(), context.partition_key, context.run.run_id, context.log.info)
        nag_home.warehouse().refresh_views()
        return to_result(result)

    @dg.asset(
        partitions_def=target_x_model, group_name="targets", kinds={"pytorch", "parquet"}, pool="model",
        deps=[target_examples,
              dg.AssetDep(model_checkpoints, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="model"))],
        code_version=code_version("target_activations", settings.hash_for("activations")),
        automation_condition=eager_ignoring("model_checkpoints"),
        description="NAGs of the target examples, NAG_HOME/cache/target_activations/<model>/<target>.parquet.",
    )
    def target_activations(context: dg.AssetExecutionContext, nag_home: NagHomeResource, models: ModelResource) -> dg.MaterializeResult:
        return to_result(target_steps.target_activations(nag_home.state(), models.pool(), context.partition_key,
                                                         context.run.run_id, context.log.info))

    @dg.asset(
        partitions_def=target_x_model, group_name="targets", kinds={"duckdb"}, deps=[target_activations],
        code_version=code_version("neuron_graph", settings.hash_for("neuron_graph")),
        automation_condition=dg.AutomationCondition.eager(),
        description="The target profile: per layer, each neuron's frequency among target NAGs, normalised to sum to 1 "
                    "(warehouse table `neuron_graphs`).",
    )
    def neuron_graph(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        result = target_steps.neuron_graph(nag_home.state(), context.partition_key, context.run.run_id, context.log.info)
        nag_home.warehouse().refresh_views()
        return to_result(result)

    return [target_examples, target_activations, neuron_graph]
