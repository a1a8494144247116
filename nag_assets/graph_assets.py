"""All assets of the graph, built for one set of settings (their code versions depend on it)."""

from __future__ import annotations

import dagster as dg

from nag_assets import activations, pool, recipes, scores, signals, subsets, targets
from nag_assets.sources import SOURCES
from nag_core.settings import Settings

TARGET_CHAIN = ("target_examples", "target_activations", "neuron_graph")


def build_assets(settings: Settings) -> list:
    raw_pool, dedup_pool = pool.build(settings)
    (activation_cache,) = activations.build(settings, dedup_pool)
    target_examples, target_activations, neuron_graph = targets.build(settings)
    (influence_scores,) = scores.build(settings, neuron_graph, activation_cache)
    selected_subset, mixture_subset = subsets.build(settings, influence_scores, dedup_pool)
    family_assets = signals.build(settings, dedup_pool, target_examples, influence_scores)
    by_name = {a.key.to_user_string(): a for a in family_assets}
    signal_assets = [influence_scores, *(by_name[n] for n in ("embedding_scores", "dsir_scores", "bm25_scores",
                                                               "gradient_scores", "quality_signals",
                                                               "distilled_scores"))]
    (recipe_subset,) = recipes.build(signal_assets)
    return [*SOURCES, raw_pool, dedup_pool, activation_cache, target_examples, target_activations, neuron_graph,
            influence_scores, selected_subset, mixture_subset, *family_assets, recipe_subset]


def asset_keys(*names: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(n) for n in names]


# One job per partitioning, so sensors and the schedule can launch partitioned runs.
pool_job = dg.define_asset_job("pool_job", selection=asset_keys("raw_pool", "dedup_pool"))
activations_job = dg.define_asset_job("activations_job", selection=asset_keys("activation_cache", "embedding_cache"))
target_job = dg.define_asset_job("target_job", selection=asset_keys(*TARGET_CHAIN))
reselect_job = dg.define_asset_job("reselect_job", selection=asset_keys("influence_scores", "selected_subset"))
model_signals_job = dg.define_asset_job("model_signals_job", selection=asset_keys("embedding_scores", "distilled_scores"))
target_signals_job = dg.define_asset_job("target_signals_job",
                                         selection=asset_keys("dsir_scores", "bm25_scores", "gradient_scores"))
quality_job = dg.define_asset_job("quality_job", selection=asset_keys("quality_signals"))
proxy_lm_job = dg.define_asset_job("proxy_lm_job", selection=asset_keys("proxy_lm"))
mixture_job = dg.define_asset_job("mixture_job", selection=asset_keys("mixture_subset"))
recipe_job = dg.define_asset_job("recipe_job", selection=asset_keys("recipe_subset"))
JOBS = [pool_job, activations_job, target_job, reselect_job, model_signals_job, target_signals_job, quality_job,
        proxy_lm_job, mixture_job, recipe_job]

# The job that materialises each asset, for runners that go stage by stage.
JOB_OF = {"raw_pool": pool_job, "dedup_pool": pool_job, "activation_cache": activations_job,
          "embedding_cache": activations_job, "target_examples": target_job, "target_activations": target_job,
          "neuron_graph": target_job, "proxy_lm": proxy_lm_job, "influence_scores": reselect_job,
          "embedding_scores": model_signals_job, "dsir_scores": target_signals_job, "bm25_scores": target_signals_job,
          "gradient_scores": target_signals_job, "quality_signals": quality_job, "selected_subset": reselect_job,
          "mixture_subset": mixture_job, "recipe_subset": recipe_job, "distilled_scores": model_signals_job}
