"""Steps that score the pool against target graphs and choose subsets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from nag_core.features import read_cache, read_meta
from nag_core.freshness import State, partition_key, split_key
from nag_core.graph import contrastive_profile, profile_from_frame
from nag_core.hashing import digest
from nag_core.home import MIXTURE
from nag_core.plots import histogram_png
from nag_core.pool_counts import pool_counts
from nag_core.scoring import similarity
from nag_core.selection import equal_budget_mixture, select_by_budget
from nag_core.settings import Settings, parse_layers
from nag_core.signal_sink import write_signals
from nag_core.signal_steps import require_pool, signal_provenance
from nag_core.step_result import Log, StepResult, code_version, now, record, require_fingerprint, versions
from nag_core.subset_store import lookup_documents, write_decisions, write_subset
from nag_core.warehouse import Warehouse, partition_id

SIGNALS = {"frequency": "nag_frequency", "contrastive": "nag_contrastive"}


def signal_name(settings: Settings) -> str:
    """The ``signals.signal`` value the default subsets rank by, so audits can tell recipes apart."""
    return SIGNALS[settings.profile]


def nag_partition(model: str, target: str) -> str:
    return partition_id("influence_scores", model, target)


@dataclass
class Profiles:
    """The weights every NAG signal scores with, restricted to the scored layers."""

    frequency: np.ndarray  # (L', N), each layer sums to 1
    contrastive: np.ndarray  # (L', N) log ratio to the pool
    layers: list[int]


def target_profiles(state: State, graph: pl.DataFrame, model: str, nt: str, log: Log) -> Profiles:
    """Frequency and contrastive profiles of one target graph, for the layers ``score_layers`` names.

    The contrastive background is the sum of the shards' stored neuron counts
    (:mod:`nag_core.pool_counts`); the target graph is stored as counts, so switching
    recipes never re-extracts or rebuilds graphs.
    """
    shards = sorted(state.shards)
    meta = read_meta(state.home.activation_cache_path(model, shards[0]))
    L, width = meta["num_layers"], meta["widths"][nt]
    layers = parse_layers(state.settings.score_layers, L)
    target_counts = np.zeros((L, width), np.int64)
    target_counts[graph["layer"].to_numpy(), graph["neuron"].to_numpy()] = graph["count"].to_numpy()
    background = pool_counts(state.home, model, shards, nt, (L, width))
    log(f"contrastive profile: pool background from {len(shards)} shard(s)")
    contrast = contrastive_profile(target_counts, background, state.settings.contrast_smoothing)
    return Profiles(profile_from_frame(graph, L, width)[layers], contrast[layers], layers)


def _good_and_bad(contrast: np.ndarray, layers: list[int], n: int = 5) -> pl.DataFrame:
    """Per layer, the n neurons with the largest positive (good) and negative (bad) contrastive weight."""
    rows = []
    for row, layer in zip(contrast, layers, strict=True):
        good = np.lexsort((np.arange(row.size), -row))[:n]
        bad = np.lexsort((np.arange(row.size), row))[:n]
        rows.append({"layer": layer, "good_neurons": ", ".join(f"{k} ({row[k]:+.2f})" for k in good if row[k] > 0),
                     "bad_neurons": ", ".join(f"{k} ({row[k]:+.2f})" for k in bad if row[k] < 0)})
    return pl.DataFrame(rows)


def influence_scores(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """Every NAG signal of every kept pool document against one target's graph.

    ``nag_frequency`` (paper) and ``nag_contrastive`` score with the two profiles;
    ``nag_good`` and ``nag_bad`` split the contrastive score into the neurons the target
    activates more than the pool (W > 0) and less (W < 0, as a positive magnitude), so
    ``nag_contrastive = nag_good - nag_bad`` and a recipe can weight them apart (NeuronLLM's
    good and bad neurons).
    """
    fp = require_fingerprint(state, "influence_scores", key)
    p = split_key("influence_scores", key)
    nt = state.settings.score_neuron_type
    wh = Warehouse(state.home.root)
    graph = wh.read("neuron_graphs", [partition_id(p["target"], p["model"])])
    profiles = target_profiles(state, graph, p["model"], nt, log)
    weights = {"nag_frequency": profiles.frequency, "nag_contrastive": profiles.contrastive,
               "nag_good": np.maximum(profiles.contrastive, 0.0), "nag_bad": np.maximum(-profiles.contrastive, 0.0)}
    ranked_by = signal_name(state.settings)
    values, top = [], []  # the ranking signal's values (one float per document) and each shard's ten best

    def chunks() -> Iterator[pl.DataFrame]:
        for shard in sorted(state.shards):
            docids, idx, _, _ = read_cache(state.home.activation_cache_path(p["model"], shard), nt)
            sliced = np.ascontiguousarray(idx[:, profiles.layers, :])
            scores = {signal: similarity(sliced, w) for signal, w in weights.items()}
            main = pl.DataFrame({"docid": docids, "shard": shard, "value": scores[ranked_by]})
            values.append(scores[ranked_by])
            top.append(main.sort(["value", "docid"], descending=[True, False]).head(10))
            yield pl.concat([pl.DataFrame({"docid": docids, "shard": shard, "signal": signal, "value": v})
                             for signal, v in scores.items()])

    legacy = wh.table_dir("signals") / f"{partition_id(p['target'], p['model'])}.parquet"
    legacy.unlink(missing_ok=True)  # written by code version 1, before every family had its own file
    written = write_signals(state, "influence_scores", key, chunks(), run_id, required=True)
    record(state, "influence_scores", key, fp, written.data_version, run_id)
    values = np.concatenate(values)
    log(f"scored {values.size} documents against {p['target']} with {p['model']}")
    return StepResult(written.data_version, {
        "documents": int(values.size), "shards": len(state.shards), "signals": list(weights), "ranked_by": ranked_by,
        "layers": profiles.layers, "min": float(values.min()), "mean": float(values.mean()), "max": float(values.max()),
        "config_hash": written.config_hash,
        "good_and_bad_neurons": _good_and_bad(profiles.contrastive, profiles.layers).to_dicts()},
        preview=pl.concat(top).sort(["value", "docid"], descending=[True, False]).head(10),
        plot_png=histogram_png(values, f"{ranked_by} to {p['target']} ({p['model']})", "score"))


def _scored_pool(state: State, target: str, model: str) -> pl.DataFrame:
    wh = Warehouse(state.home.root)
    scores = (wh.read("signals", [nag_partition(model, target)], columns=["docid", "value"],
                      where=[("signal", "=", signal_name(state.settings))]).select("docid", pl.col("value").alias("score")))
    kept = wh.read("pool_kept", sorted(state.shards), columns=["docid", "token_num", "shard"])
    return require_pool(state, scores.join(kept, on="docid", how="inner"))


def _decisions(scored: pl.DataFrame, members: pl.DataFrame, target: str) -> pl.DataFrame:
    """One row per scored document: its rank, and whether the budget cut kept it."""
    ranked = scored.sort(["score", "docid"], descending=[True, False]).with_row_index("rank", offset=1)
    chosen = members.select("docid", pl.col("rank").alias("pick"))
    return ranked.join(chosen, on="docid", how="left").with_columns(
        pl.lit(target).alias("target"), pl.col("rank").cast(pl.Int64),
        pl.when(pl.col("pick").is_not_null()).then(pl.lit("selected")).otherwise(pl.lit("budget")).alias("outcome"),
        pl.lit(1, pl.Int64).alias("step"), pl.col("pick").is_not_null().alias("credited"))


def _write_subset(state: State, name: str, kind: str, model: str, members: pl.DataFrame, pool_tokens: int,
                  targets: list[str], inputs: dict, run_id: str) -> dict:
    """Subset Parquet (with text and payload), manifest, and warehouse rows."""
    settings = state.settings
    budget = int(pool_tokens * settings.budget_fraction)
    selected_tokens = int(members["token_num"].sum() or 0)
    config_hash = digest(settings.hash_for("selection"), settings.hash_for("scores"))
    manifest = {
        "subset": name, "kind": kind, "model": model, "targets": targets, "created_at": now(), "run_id": run_id,
        "recipe": {"method": "nag", "signal": signal_name(settings), "profile": settings.profile,
                   "contrast_smoothing": settings.contrast_smoothing if settings.profile == "contrastive" else None,
                   "neuron_type": settings.score_neuron_type, "top_k": settings.top_k, "score_layers": settings.score_layers,
                   "max_length": settings.max_length, "budget_fraction": settings.budget_fraction,
                   "rule": "rank by score desc, docid asc; keep prefix with cumulative tokens <= floor(fraction * pool tokens)"
                           + ("; each of M targets gets fraction/M, concatenated" if kind == "mixture" else "")},
        "signals_used": signal_provenance(state, [(signal_name(settings), "influence_scores",
                                                   partition_key("influence_scores", model=model, target=t)) for t in targets]),
        "inputs": inputs, "settings": settings.as_dict(), "config_hash": config_hash,
        "code_version": code_version("mixture_subset" if kind == "mixture" else "selected_subset"), "versions": versions(),
        "pool_tokens": pool_tokens, "budget_tokens": budget, "selected_tokens": selected_tokens, "documents": members.height,
    }
    write_subset(state.home, manifest, members.select("docid", "target", "rank", "score", "token_num", "shard"),
                 order_by="m.target, m.rank")
    return manifest


def _lineage_inputs(state: State, model: str, targets: list[str]) -> dict:
    """Data versions of every input that fed a subset, for its manifest."""
    shards = {s: {"file": state.shards[s], "raw_pool": state.data_version("raw_pool", s),
                  "dedup_pool": state.data_version("dedup_pool", s),
                  "activation_cache": state.data_version("activation_cache", partition_key("activation_cache", model=model, shard=s))}
              for s in sorted(state.shards)}
    tkeys = {t: partition_key("neuron_graph", model=model, target=t) for t in targets}
    return {"model": {"name": model, "fingerprint": state.models[model].fingerprint,
                      "tokenizer_hash": state.models[model].tokenizer_hash},
            "shards": shards,
            "targets": {t: {"files": state.targets[t], "target_examples": state.data_version("target_examples", k),
                            "neuron_graph": state.data_version("neuron_graph", k),
                            "influence_scores": state.data_version("influence_scores", k)} for t, k in tkeys.items()}}


def _budget_setting(state: State) -> str:
    """Where the budget comes from, for the error when it selects nothing."""
    return f"{state.home.settings_path}: budget_fraction"


def selected_subset(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "selected_subset", key)
    p = split_key("selected_subset", key)
    scored = _scored_pool(state, p["target"], p["model"])
    members = select_by_budget(scored, state.settings.budget_fraction, _budget_setting(state),
                               label=f"target {p['target']!r}").with_columns(pl.lit(p["target"]).alias("target"))
    name = f"{p['target']}__{p['model']}"
    pool_tokens = int(scored["token_num"].sum() or 0)
    manifest = _write_subset(state, name, "single", p["model"], members, pool_tokens, [p["target"]],
                             _lineage_inputs(state, p["model"], [p["target"]]), run_id)
    write_decisions(state.home, name, run_id, _decisions(scored, members, p["target"]))
    dv = digest(members["docid"].to_list())
    record(state, "selected_subset", key, fp, dv, run_id)
    log(f"subset {name}: {members.height} documents, {manifest['selected_tokens']} of {pool_tokens} pool tokens")
    cut = float(members["score"].min()) if members.height else None
    return StepResult(dv, _subset_metadata(manifest), preview=_top_preview(state, members),
                      plot_png=histogram_png(scored["score"].to_numpy(), f"{name}: scores and cut-off", "similarity", cut))


def mixture_subset(state: State, model: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "mixture_subset", model)
    targets = sorted(state.targets)
    scored = {t: _scored_pool(state, t, model) for t in targets}
    members = equal_budget_mixture(scored, state.settings.budget_fraction, _budget_setting(state)).drop("cum_tokens", "copies")
    pool_tokens = int(next(iter(scored.values()))["token_num"].sum() or 0)
    name = f"{MIXTURE}__{model}"
    manifest = _write_subset(state, name, "mixture", model, members, pool_tokens, targets,
                             _lineage_inputs(state, model, targets), run_id)
    write_decisions(state.home, name, run_id, pl.concat(
        [_decisions(scored[t], members.filter(pl.col("target") == t), t) for t in targets]))
    dv = digest(members["target"].to_list(), members["docid"].to_list())
    record(state, "mixture_subset", model, fp, dv, run_id)
    log(f"mixture {name}: {members.height} rows over {len(targets)} targets")
    per_target = members.group_by("target").agg(pl.len().alias("documents"), pl.col("token_num").sum().alias("tokens")).sort("target")
    return StepResult(dv, {**_subset_metadata(manifest), "unique_documents": members["docid"].n_unique()}, preview=per_target)


def _subset_metadata(manifest: dict) -> dict:
    share = manifest["selected_tokens"] / manifest["pool_tokens"] if manifest["pool_tokens"] else 0.0
    return {"documents": manifest["documents"], "selected_tokens": manifest["selected_tokens"],
            "pool_tokens": manifest["pool_tokens"], "budget_tokens": manifest["budget_tokens"],
            "token_share": round(share, 4), "budget_fraction": manifest["recipe"]["budget_fraction"],
            "config_hash": manifest["config_hash"], "manifest": str(manifest.get("subset"))}


def _top_preview(state: State, members: pl.DataFrame, n: int = 10) -> pl.DataFrame:
    top = members.head(n)
    docs = lookup_documents(state.home, top["docid"].to_list(), ["text"], sorted(set(top["shard"].to_list())))
    return top.join(docs, on="docid", how="left").select(
        "rank", "docid", "shard", pl.col("score").round(5), "token_num", pl.col("text").str.slice(0, 100).alias("text"))
