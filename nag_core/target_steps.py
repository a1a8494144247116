"""Steps over a target: its examples, their activations, and its neuron graph."""

from __future__ import annotations

import numpy as np
import polars as pl

from nag_core.features import read_cache
from nag_core.freshness import State, split_key
from nag_core.graph import build_profile, profile_frame, top_neurons
from nag_core.hashing import digest
from nag_core.models import ModelPool
from nag_core.pool_steps import extract_to_cache
from nag_core.step_result import Log, StepResult, code_version, record, require_fingerprint
from nag_core.targets import read_target
from nag_core.warehouse import Warehouse, partition_id


def target_examples(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "target_examples", key)
    target = split_key("target_examples", key)["target"]
    examples = read_target(state.home.target_dir(target), target)
    Warehouse(state.home.root).write("target_examples", target, examples)
    dv = digest(examples["example_id"].to_list(), examples["text"].to_list())
    record(state, "target_examples", key, fp, dv, run_id)
    log(f"target {target}: {examples.height} examples from {examples['source_file'].n_unique()} file(s)")
    return StepResult(dv, {"examples": examples.height, "files": sorted(set(examples["source_file"].to_list())),
                           "mean_chars": round(float(examples["text"].str.len_chars().mean()), 1)},
                      preview=examples.select("example_id", pl.col("text").str.slice(0, 160)).head(10))


def target_activations(state: State, models: ModelPool, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "target_activations", key)
    p = split_key("target_activations", key)
    examples = Warehouse(state.home.root).read("target_examples", [p["target"]])
    path = state.home.target_cache_path(p["model"], p["target"])
    dv, meta = extract_to_cache(state, models, p["model"], examples["example_id"].to_list(), examples["text"].to_list(),
                                path, {"target": p["target"], "code_version": code_version("target_activations")}, log)
    record(state, "target_activations", key, fp, dv, run_id)
    return StepResult(dv, meta)


def neuron_graph(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "neuron_graph", key)
    p = split_key("neuron_graph", key)
    nt = state.settings.score_neuron_type
    path = state.home.target_cache_path(p["model"], p["target"])
    _, idx, _, meta = read_cache(path, nt)
    counts, _ = build_profile(idx, meta["widths"][nt])
    config_hash = state.settings.hash_for("neuron_graph")
    rows = profile_frame(counts).with_columns(
        pl.lit(p["target"]).alias("target"), pl.lit(p["model"]).alias("model"), pl.lit(nt).alias("neuron_type"),
        pl.lit(config_hash).alias("config_hash"), pl.lit(run_id).alias("run_id"),
    ).select("target", "model", "neuron_type", "layer", "neuron", "count", "weight", "config_hash", "run_id")
    Warehouse(state.home.root).write("neuron_graphs", partition_id(p["target"], p["model"]), rows)
    dv = digest(np.ascontiguousarray(counts).tobytes().hex())
    record(state, "neuron_graph", key, fp, dv, run_id)
    tops = top_neurons(counts, 5)
    preview = pl.DataFrame([{"layer": layer, "top_neurons": ", ".join(f"{k} ({w:.3f})" for k, w in ns)}
                            for layer, ns in tops.items()])
    distinct = rows.group_by("layer").len()["len"]
    log(f"neuron graph {p['target']} × {p['model']}: {rows.height} (layer, neuron) pairs from {idx.shape[0]} examples")
    return StepResult(dv, {"target_examples": int(idx.shape[0]), "layers": int(counts.shape[0]), "neuron_type": nt,
                           "nonzero_pairs": rows.height, "mean_distinct_neurons_per_layer": round(float(distinct.mean()), 1),
                           "config_hash": config_hash}, preview=preview)
