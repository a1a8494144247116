"""The non-NAG signal families: one asset each, so lineage shows which signals feed which subset.

Model-free signals (DSIR, BM25, gradient influence under the proxy LM) are partitioned by
target only; embedding cosine by (model, target) over a per-(model, shard) embedding
cache; quality signals per shard; the distilled scorer by (model, target), over the NAG
scores it imitates. ``signals.families`` in nag.yaml decides which the
runner and sensors build; the assets exist either way, so the graph is the same for
every data root.
"""

import dagster as dg

from nag_assets.partitions import ALL, SAME_MODEL_ALL_SHARDS, eager_ignoring, on, shard_x_model, shards, target_x_model, targets
from nag_assets.results import code_version, to_result
from nag_assets.sources import model_checkpoints
from nag_core import checks, signal_steps
from nag_core.settings import Settings
from nag_core.signal_families import FAMILIES
from resources import ModelResource, NagHomeResource


def _check(asset: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("covers_kept_pool", asset=asset,
                              description="One finite value per kept document for every signal the asset writes.")]


def _result(nag_home: NagHomeResource, asset: str, key: str, result) -> dg.MaterializeResult:
    nag_home.warehouse().refresh_views()
    return to_result(result, [("covers_kept_pool", checks.signals_cover_pool(nag_home.state(), asset, key))])


def build(settings: Settings, dedup_pool: dg.AssetsDefinition, target_examples: dg.AssetsDefinition,
          influence_scores: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=shard_x_model, group_name="activations", kinds={"pytorch", "parquet"}, pool="model",
        deps=[dg.AssetDep(dedup_pool, partition_mapping=on("shard")),
              dg.AssetDep(model_checkpoints, partition_mapping=on("model"))],
        code_version=code_version("embedding_cache", settings.hash_for("embeddings")),
        automation_condition=eager_ignoring("model_checkpoints"),
        description="Mean-pooled last hidden states of every kept document, NAG_HOME/cache/embeddings/<model>/<shard>.parquet.",
    )
    def embedding_cache(context: dg.AssetExecutionContext, nag_home: NagHomeResource, models: ModelResource) -> dg.MaterializeResult:
        return to_result(signal_steps.embedding_cache(nag_home.state(), models.pool(), context.partition_key,
                                                      context.run.run_id, context.log.info))

    @dg.asset(
        partitions_def=target_x_model, group_name="signals", kinds={"pytorch", "duckdb"}, pool="model",
        deps=[target_examples, dg.AssetDep(embedding_cache, partition_mapping=SAME_MODEL_ALL_SHARDS)],
        code_version=code_version("embedding_scores", settings.hash_for("embeddings")),
        automation_condition=dg.AutomationCondition.eager(), check_specs=_check("embedding_scores"),
        description=FAMILIES["embedding_scores"].description + " Rows of `signals` (signal = embedding).",
    )
    def embedding_scores(context: dg.AssetExecutionContext, nag_home: NagHomeResource, models: ModelResource) -> dg.MaterializeResult:
        result = signal_steps.embedding_scores(nag_home.state(), models.pool(), context.partition_key,
                                               context.run.run_id, context.log.info)
        return _result(nag_home, "embedding_scores", context.partition_key, result)

    def lexical(asset: str) -> dg.AssetsDefinition:
        @dg.asset(
            name=asset, partitions_def=targets, group_name="signals", kinds={"duckdb"},
            deps=[dg.AssetDep(target_examples, partition_mapping=on("target")), dg.AssetDep(dedup_pool, partition_mapping=ALL)],
            code_version=code_version(asset, ""), automation_condition=dg.AutomationCondition.eager(),
            check_specs=_check(asset),
            description=FAMILIES[asset].description + f" Rows of `signals` (signal = {FAMILIES[asset].signals[0]}).",
        )
        def _lexical(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
            result = signal_steps.lexical_scores(nag_home.state(), asset, context.partition_key, context.run.run_id,
                                                 context.log.info)
            return _result(nag_home, asset, context.partition_key, result)

        return _lexical

    @dg.asset(
        group_name="signals", kinds={"pytorch", "safetensors"}, pool="model",
        deps=[dg.AssetDep(dedup_pool, partition_mapping=ALL)],
        code_version=code_version("proxy_lm", settings.hash_for("proxy_lm")),
        description="A byte-level GPT-2 trained from scratch on a seeded sample of the kept pool (no pretrained causal "
                    "LM is available offline): the model behind perplexity and gradient influence. "
                    "NAG_HOME/cache/proxy_lm/ (safetensors).",
    )
    def proxy_lm(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        return to_result(signal_steps.proxy_lm(nag_home.state(), "", context.run.run_id, context.log.info))

    @dg.asset(
        partitions_def=shards, group_name="signals", kinds={"duckdb"},
        deps=[dedup_pool, *([proxy_lm] if "perplexity" in settings.signals.families else [])],
        code_version=code_version("quality_signals", settings.hash_for("quality")),
        automation_condition=dg.AutomationCondition.eager(), check_specs=_check("quality_signals"),
        description=FAMILIES["quality_signals"].description + " Rows of `signals` with no target.",
    )
    def quality_signals(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        result = signal_steps.quality_signals(nag_home.state(), context.partition_key, context.run.run_id, context.log.info)
        return _result(nag_home, "quality_signals", context.partition_key, result)

    @dg.asset(
        partitions_def=targets, group_name="signals", kinds={"pytorch", "duckdb"}, pool="model",
        deps=[dg.AssetDep(target_examples, partition_mapping=on("target")), proxy_lm,
              dg.AssetDep(dedup_pool, partition_mapping=ALL)],
        code_version=code_version("gradient_scores", settings.hash_for("gradient")),
        automation_condition=dg.AutomationCondition.eager(), check_specs=_check("gradient_scores"),
        description=FAMILIES["gradient_scores"].description + " Rows of `signals` (signal = gradient).",
    )
    def gradient_scores(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        result = signal_steps.gradient_scores(nag_home.state(), context.partition_key, context.run.run_id, context.log.info)
        return _result(nag_home, "gradient_scores", context.partition_key, result)

    @dg.asset(
        partitions_def=target_x_model, group_name="signals", kinds={"scikitlearn", "duckdb"},
        deps=[influence_scores, dg.AssetDep(dedup_pool, partition_mapping=ALL)],
        code_version=code_version("distilled_scores", settings.hash_for("distilled")),
        # Opt-in: nothing upstream is ever missing, so eager would build it even where switched off.
        automation_condition=dg.AutomationCondition.eager() if "distilled" in settings.signals.families else None,
        check_specs=_check("distilled_scores"),
        description=FAMILIES["distilled_scores"].description + " Rows of `signals` (signal = distilled_nag); the "
                    "fitted scorer is NAG_HOME/cache/distilled/<model>/<target>.npz. CPU only: no neural model.",
    )
    def distilled_scores(context: dg.AssetExecutionContext, nag_home: NagHomeResource) -> dg.MaterializeResult:
        result = signal_steps.distilled_scores(nag_home.state(), context.partition_key, context.run.run_id,
                                               context.log.info)
        return _result(nag_home, "distilled_scores", context.partition_key, result)

    return [embedding_cache, embedding_scores, lexical("dsir_scores"), lexical("bm25_scores"), proxy_lm,
            quality_signals, gradient_scores, distilled_scores]
