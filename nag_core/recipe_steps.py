"""The step that runs one recipe (``NAG_HOME/recipes/<name>.yaml``) into the subset ``<name>__recipe``.

It reads only cached signals: every signal the recipe names must already be in the
warehouse, computed by its family's asset for the recipe's model and targets. The
subset's manifest records the recipe as parsed, and for every signal read the asset,
partition, data version and settings hash that produced it, so an audit can tell which
signals made a subset without rerunning anything.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nag_core.errors import NagInputError
from nag_core.freshness import DIMENSIONS, State, split_key
from nag_core.hashing import digest
from nag_core.plots import histogram_png
from nag_core.recipe_ops import COMBINED, run_recipe
from nag_core.recipes import Recipe
from nag_core.signal_families import FAMILY_OF_OPTION, SIGNAL_FAMILY, per_target
from nag_core.signal_steps import signal_provenance
from nag_core.step_result import Log, StepResult, code_version, now, record, require_fingerprint, versions
from nag_core.subset_store import lookup_documents, write_decisions, write_subset
from nag_core.warehouse import Warehouse, partition_id

RECIPE_SUFFIX = "__recipe"


def recipe_subset_name(recipe: str) -> str:
    return f"{recipe}{RECIPE_SUFFIX}"


def resolve(state: State, name: str) -> tuple[Recipe, list[str]]:
    """The parsed recipe and its targets, or the error that names what to fix."""
    recipe = state.recipes.get(name)
    if recipe is None:
        raise NagInputError(f"{state.home.recipes_dir}: no recipe {name!r}.yaml")
    if isinstance(recipe, NagInputError):
        raise recipe
    if recipe.model not in state.models:
        raise NagInputError(f"{recipe.path}: model: {recipe.model!r} is not a known model ({sorted(state.models)}); "
                            "put its checkpoint under models/ or fix the name")
    for signal in recipe.signals:
        family = SIGNAL_FAMILY[signal]
        if not state.enabled(family):
            options = [o for o, f in FAMILY_OF_OPTION.items() if f == family]
            raise NagInputError(f"{recipe.path}: signal {signal!r} is computed by {family}, which is switched off; "
                                f"add {options[-1] if signal == 'quality_perplexity' else options[0]!r} to "
                                "'signals.families' in nag.yaml")
    return recipe, recipe.resolved_targets(list(state.targets))


def signal_partitions(state: State, recipe: Recipe, targets: list[str]) -> list[tuple[str, str, str]]:
    """(signal, asset, ledger key) of every signal partition the recipe reads."""
    out = []
    for signal in recipe.signals:
        asset = SIGNAL_FAMILY[signal]
        dims = DIMENSIONS[asset]
        if dims == ("shard",):
            out += [(signal, asset, s) for s in sorted(state.shards)]
        else:
            for t in targets if per_target(signal) else [None]:
                values = {"model": recipe.model, "target": t}
                out.append((signal, asset, "|".join(values[d] for d in dims)))
    return out


def read_signals(state: State, parts: list[tuple[str, str, str]]) -> pl.DataFrame:
    wh = Warehouse(state.home.root)
    frames = []
    for signal, asset, key in parts:
        frames.append(wh.read("signals", [partition_id(asset, *key.split("|"))], columns=["docid", "signal", "target", "value"],
                              where=[("signal", "=", signal)]))
    return pl.concat(frames).unique(["docid", "signal", "target"], keep="first", maintain_order=True)


def recipe_subset(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    name = split_key("recipe_subset", key)["recipe"]
    recipe, targets = resolve(state, name)
    fp = require_fingerprint(state, "recipe_subset", key)
    wh = Warehouse(state.home.root)
    shards = sorted(state.shards)
    pool = wh.read("pool_kept", shards, columns=["docid", "token_num", "shard"])
    column = recipe.select.source_column
    if recipe.select.max_source_share is not None:
        sources = lookup_documents(state.home, pool["docid"].to_list(), [column], shards)
        if column not in sources.columns:
            raise NagInputError(f"{recipe.path}: select.source_column {column!r} is not a column of the pool shards; "
                                "name a payload column they have")
        pool = pool.join(sources.select("docid", column), on="docid", how="left")
    parts = signal_partitions(state, recipe, targets)
    result = run_recipe(recipe, targets, pool, read_signals(state, parts))
    subset = recipe_subset_name(name)
    members = result.members.join(pool.select("docid", "shard"), on="docid", how="left").select(
        "docid", "target", pl.col("order").alias("rank"), "score", "token_num", "shard")
    stats = result.stats
    provenance = signal_provenance(state, parts)
    manifest = {
        "subset": subset, "kind": "recipe", "model": recipe.model, "targets": targets, "created_at": now(), "run_id": run_id,
        "recipe": {"name": name, "file": str(recipe.path), "digest": recipe.digest, **recipe.as_dict(),
                   "budget_fraction": recipe.select.budget_fraction},
        "signals_used": provenance,
        "inputs": {"model": {"name": recipe.model, "fingerprint": state.models[recipe.model].fingerprint},
                   "shards": {s: {"file": state.shards[s], "dedup_pool": state.data_version("dedup_pool", s)} for s in shards}},
        "config_hash": digest(recipe.digest, [p["data_version"] for p in provenance], length=12),
        "code_version": code_version("recipe_subset"), "versions": versions(),
        "pool_tokens": stats["pool_tokens"], "budget_tokens": stats["budget_tokens"],
        "selected_tokens": stats["selected_tokens"], "documents": stats["selected_documents"],
        "stats": {k: v for k, v in stats.items() if k not in ("pool_tokens", "budget_tokens")},
    }
    write_subset(state.home, manifest, members, order_by="m.rank")
    write_decisions(state.home, subset, run_id, result.decisions, result.signal_values)
    dv = digest(members["docid"].to_list(), members["target"].to_list())
    record(state, "recipe_subset", key, fp, dv, run_id)
    log(f"recipe {name}: {members.height} documents, {stats['selected_tokens']} of {stats['pool_tokens']} pool tokens")
    scores = result.decisions.filter(pl.col("target") == (COMBINED if COMBINED in result.decisions["target"].unique().to_list()
                                                          else targets[0]))["score"].drop_nulls().to_numpy()
    cut = float(np.min(members["score"].to_numpy())) if members.height else None
    top = members.head(10)
    texts = lookup_documents(state.home, top["docid"].to_list(), ["text"], shards)
    preview = top.join(texts, on="docid", how="left").select(
        "rank", "docid", "target", pl.col("score").round(4), "token_num", pl.col("text").str.slice(0, 90))
    return StepResult(dv, {"documents": stats["selected_documents"], "selected_tokens": stats["selected_tokens"],
                           "pool_tokens": stats["pool_tokens"], "budget_tokens": stats["budget_tokens"],
                           "filtered": stats["filtered"], "dropped_missing": stats["dropped_missing"],
                           "source_quota_skipped": stats["source_quota_skipped"], "tokens_by_target": stats["tokens_by_target"],
                           "tokens_by_source": stats["tokens_by_source"], "recipe": manifest["recipe"],
                           "signals_used": [f"{p['signal']} <- {p['asset']}[{p['partition']}]" for p in provenance],
                           "families": sorted({p["asset"] for p in provenance}), "config_hash": manifest["config_hash"]},
                      preview=preview, plot_png=histogram_png(scores, f"{subset}: fused scores and cut-off", "fused score", cut)
                      if scores.size else None)
