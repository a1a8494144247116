"""All assets of the graph, built for one set of settings (their code versions depend on it)."""

from __future__ import annotations

import dagster as dg

from nag_assets import activations, pool, scores, subsets, targets
from nag_assets.sources import SOURCES
from nag_core.settings import Settings

TARGET_CHAIN = ("target_examples", "target_activations", "neuron_graph")


def build_assets(settings: Settings) -> list:
    raw_pool, dedup_pool = pool.build(settings)
    (activation_cache,) = activations.build(settings, dedup_pool)
    target_examples, target_activations, neuron_graph = targets.build(settings)
    (influence_scores,) = scores.build(settings, neuron_graph, activation_cache)
    selected_subset, mixture_subset = subsets.build(settings, influence_scores, dedup_pool)
    return [*SOURCES, raw_pool, dedup_pool, activation_cache, target_examples, target_activations, neuron_graph,
            influence_scores, selected_subset, mixture_subset]


def asset_keys(*names: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(n) for n in names]


# One job per partitioning, so sensors and the schedule can launch partitioned runs.
pool_job = dg.define_asset_job("pool_job", selection=asset_keys("raw_pool", "dedup_pool"))
activations_job = dg.define_asset_job("activations_job", selection=asset_keys("activation_cache"))
target_job = dg.define_asset_job("target_job", selection=asset_keys(*TARGET_CHAIN))
reselect_job = dg.define_asset_job("reselect_job", selection=asset_keys("influence_scores", "selected_subset"))
mixture_job = dg.define_asset_job("mixture_job", selection=asset_keys("mixture_subset"))
JOBS = [pool_job, activations_job, target_job, reselect_job, mixture_job]

# The job that materialises each asset, for runners that go stage by stage.
JOB_OF = {"raw_pool": pool_job, "dedup_pool": pool_job, "activation_cache": activations_job,
          "target_examples": target_job, "target_activations": target_job, "neuron_graph": target_job,
          "influence_scores": reselect_job, "selected_subset": reselect_job, "mixture_subset": mixture_job}
