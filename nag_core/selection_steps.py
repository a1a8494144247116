"""Steps that score the pool against target graphs and choose subsets."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from nag_core.atomic import write_parquet, write_text
from nag_core.features import read_cache, read_meta
from nag_core.freshness import State, partition_key, split_key
from nag_core.graph import contrastive_profile, neuron_counts, profile_from_frame
from nag_core.hashing import digest
from nag_core.home import MIXTURE
from nag_core.plots import histogram_png
from nag_core.scoring import similarity
from nag_core.selection import equal_budget_mixture, select_by_budget
from nag_core.settings import Settings
from nag_core.step_result import Log, StepResult, code_version, now, record, require_fingerprint, versions
from nag_core.warehouse import Warehouse, partition_id

SIGNALS = {"frequency": "nag_similarity", "contrastive": "nag_contrastive"}


def signal_name(settings: Settings) -> str:
    """The ``signals.signal`` value of the configured profile, so audits can tell recipes apart."""
    return SIGNALS[settings.profile]


def _target_profile(state: State, graph: pl.DataFrame, model: str, nt: str, log: Log) -> np.ndarray:
    """The (L, N) weights to score with: the target's frequencies, or their log ratio to the pool's.

    The contrastive background is counted over every current shard's cache, so it is
    one extra read of the caches' indices; the target graph is stored as counts and
    converted here, so switching recipes never re-extracts or rebuilds graphs.
    """
    shards = sorted(state.shards)
    meta = read_meta(state.home.activation_cache_path(model, shards[0]))
    weights = profile_from_frame(graph, meta["num_layers"], meta["widths"][nt])
    if state.settings.profile == "frequency":
        return weights
    target_counts = np.zeros(weights.shape, np.int64)
    target_counts[graph["layer"].to_numpy(), graph["neuron"].to_numpy()] = graph["count"].to_numpy()
    pool_counts = np.zeros(weights.shape, np.int64)
    for shard in shards:
        pool_counts += neuron_counts(read_cache(state.home.activation_cache_path(model, shard), nt)[1], weights.shape[1])
    log(f"contrastive profile: pool background from {len(shards)} shard(s)")
    return contrastive_profile(target_counts, pool_counts, state.settings.contrast_smoothing)


def influence_scores(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """NAG similarity of every kept pool document to one target's profile."""
    fp = require_fingerprint(state, "influence_scores", key)
    p = split_key("influence_scores", key)
    nt = state.settings.score_neuron_type
    wh = Warehouse(state.home.root)
    graph = wh.read("neuron_graphs", [partition_id(p["target"], p["model"])])
    config_hash = state.settings.hash_for("scores")
    profile = _target_profile(state, graph, p["model"], nt, log)
    frames = []
    for shard in sorted(state.shards):
        docids, idx, _, _ = read_cache(state.home.activation_cache_path(p["model"], shard), nt)
        frames.append(pl.DataFrame({"docid": docids, "shard": [shard] * len(docids), "value": similarity(idx, profile)}))
    scores = pl.concat(frames).with_columns(
        pl.lit(signal_name(state.settings)).alias("signal"), pl.lit(p["target"]).alias("target"),
        pl.lit(p["model"]).alias("model"),
        pl.lit("influence_scores").alias("asset"), pl.lit(run_id).alias("run_id"), pl.lit(config_hash).alias("config_hash"),
        pl.lit(code_version("influence_scores")).alias("code_version"),
    ).select("docid", "shard", "signal", "target", "model", "value", "asset", "run_id", "config_hash", "code_version")
    wh.write("signals", partition_id(p["target"], p["model"]), scores)
    values = scores["value"].to_numpy()
    dv = digest(scores["docid"].to_list(), digest(np.round(values, 12).tobytes().hex()))
    record(state, "influence_scores", key, fp, dv, run_id)
    log(f"scored {scores.height} documents against {p['target']} with {p['model']}")
    return StepResult(dv, {"documents": scores.height, "shards": len(frames), "min": float(values.min()),
                           "mean": float(values.mean()), "max": float(values.max()), "config_hash": config_hash},
                      preview=scores.sort(["value", "docid"], descending=[True, False]).select("docid", "shard", "value").head(10),
                      plot_png=histogram_png(values, f"NAG similarity to {p['target']} ({p['model']})", "similarity"))


def _scored_pool(wh: Warehouse, target: str, model: str) -> pl.DataFrame:
    scores = wh.read("signals", [partition_id(target, model)], columns=["docid", "value"]).rename({"value": "score"})
    kept = wh.read("pool_kept", columns=["docid", "token_num"])
    return scores.join(kept, on="docid", how="inner")


def _write_subset(state: State, name: str, kind: str, model: str, members: pl.DataFrame, pool_tokens: int,
                  targets: list[str], inputs: dict, run_id: str) -> dict:
    """Subset Parquet (with text and payload), manifest, and warehouse rows."""
    wh = Warehouse(state.home.root)
    settings = state.settings
    docs = wh.read("documents").drop("row_index", "text_hash")
    payload = members.join(docs.drop("token_num"), on="docid", how="left").sort(["target", "rank"])
    budget = int(pool_tokens * settings.budget_fraction)
    selected_tokens = int(members["token_num"].sum() or 0)
    config_hash = digest(settings.hash_for("selection"), settings.hash_for("scores"))
    manifest = {
        "subset": name, "kind": kind, "model": model, "targets": targets, "created_at": now(), "run_id": run_id,
        "recipe": {"method": "nag", "signal": signal_name(settings), "profile": settings.profile,
                   "contrast_smoothing": settings.contrast_smoothing if settings.profile == "contrastive" else None,
                   "neuron_type": settings.score_neuron_type, "top_k": settings.top_k,
                   "max_length": settings.max_length, "budget_fraction": settings.budget_fraction,
                   "rule": "rank by score desc, docid asc; keep prefix with cumulative tokens <= floor(fraction * pool tokens)"
                           + ("; each of M targets gets fraction/M, concatenated" if kind == "mixture" else "")},
        "signals_used": [{"table": "signals", "signal": signal_name(settings), "target": t, "model": model} for t in targets],
        "inputs": inputs, "settings": settings.as_dict(), "config_hash": config_hash,
        "code_version": code_version("mixture_subset" if kind == "mixture" else "selected_subset"), "versions": versions(),
        "pool_tokens": pool_tokens, "budget_tokens": budget, "selected_tokens": selected_tokens, "documents": members.height,
    }
    manifest_json = json.dumps(manifest, indent=2, sort_keys=True)
    # The subset file carries its own manifest, so a copy taken elsewhere stays auditable.
    parquet_path = write_parquet(payload.to_arrow().replace_schema_metadata({b"nag_manifest": manifest_json.encode()}),
                                 state.home.subset_path(name))
    manifest_path = write_text(manifest_json, state.home.manifest_path(name))
    wh.write("subsets", name, pl.DataFrame([{
        "subset": name, "kind": kind, "targets": ",".join(targets), "model": model,
        "budget_fraction": settings.budget_fraction, "pool_tokens": pool_tokens, "budget_tokens": budget,
        "selected_tokens": selected_tokens, "documents": members.height, "config_hash": config_hash, "run_id": run_id,
        "parquet_path": str(parquet_path), "manifest_path": str(manifest_path), "created_at": manifest["created_at"]}]))
    wh.write("subset_members", name, members.with_columns(pl.lit(name).alias("subset")).join(
        docs.select("docid", "shard"), on="docid", how="left").select(
        "subset", "docid", "target", "rank", "score", "token_num", "shard"))
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


def selected_subset(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "selected_subset", key)
    p = split_key("selected_subset", key)
    wh = Warehouse(state.home.root)
    scored = _scored_pool(wh, p["target"], p["model"])
    members = select_by_budget(scored, state.settings.budget_fraction).with_columns(pl.lit(p["target"]).alias("target"))
    name = f"{p['target']}__{p['model']}"
    pool_tokens = int(scored["token_num"].sum() or 0)
    manifest = _write_subset(state, name, "single", p["model"], members, pool_tokens, [p["target"]],
                             _lineage_inputs(state, p["model"], [p["target"]]), run_id)
    dv = digest(members["docid"].to_list())
    record(state, "selected_subset", key, fp, dv, run_id)
    log(f"subset {name}: {members.height} documents, {manifest['selected_tokens']} of {pool_tokens} pool tokens")
    cut = float(members["score"].min()) if members.height else None
    return StepResult(dv, _subset_metadata(manifest), preview=_top_preview(wh, members),
                      plot_png=histogram_png(scored["score"].to_numpy(), f"{name}: scores and cut-off", "similarity", cut))


def mixture_subset(state: State, model: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "mixture_subset", model)
    wh = Warehouse(state.home.root)
    targets = sorted(state.targets)
    scored = {t: _scored_pool(wh, t, model) for t in targets}
    members = equal_budget_mixture(scored, state.settings.budget_fraction).drop("cum_tokens", "copies")
    pool_tokens = int(next(iter(scored.values()))["token_num"].sum() or 0)
    name = f"{MIXTURE}__{model}"
    manifest = _write_subset(state, name, "mixture", model, members, pool_tokens, targets,
                             _lineage_inputs(state, model, targets), run_id)
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


def _top_preview(wh: Warehouse, members: pl.DataFrame, n: int = 10) -> pl.DataFrame:
    docs = wh.read("documents", columns=["docid", "shard", "text"])
    return members.head(n).join(docs, on="docid", how="left").select(
        "rank", "docid", "shard", pl.col("score").round(5), "token_num", pl.col("text").str.slice(0, 100).alias("text"))
