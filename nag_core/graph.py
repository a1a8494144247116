"""Target profiles: the neuron graph a target activates (paper §2.4).

For layer l, neuron k's weight is the number of target NAGs that contain (l, k),
divided by the total count in that layer, so each layer's weights sum to 1:

    P[l, k] = c[l, k] / sum_j c[l, j],   c[l, k] = #{target docs whose top-K at layer l includes k}

The profile is a dense (L, N) float64 array: N is the layer width, at most 65,536.

The *contrastive* profile (this project's recipe, chosen on dev targets in
``benchmarks/bench_recipes.py``) divides by how often the pool itself activates a neuron:

    W[l, k] = log( (c[l, k] + a) / (C_t[l] + a N) ) - log( (b[l, k] + a) / (B[l] + a N) )

with b the same counts over the pool's NAGs, C_t and B the layer totals, and a the
additive smoothing. The frequency profile rewards neurons that fire for *every* kind
of text (a model's generic, always-large neurons dominate top-K by magnitude); the log
ratio is a naive-Bayes importance weight, DSIR's idea applied to neuron features
rather than n-grams, so only neurons that fire *more* for the target than for the
pool raise a score, and neurons the target never activates lower it.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def build_profile(indices: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (L, N) int64 and normalised weights (L, N) float64 from target indices (n, L, K)."""
    n, L, K = indices.shape
    flat = indices.astype(np.int64) + (np.arange(L, dtype=np.int64) * width)[None, :, None]
    counts = np.bincount(flat.reshape(-1), minlength=L * width).reshape(L, width)
    totals = counts.sum(axis=1, keepdims=True)
    weights = np.divide(counts, totals, out=np.zeros((L, width), np.float64), where=totals > 0)
    return counts, weights


def neuron_counts(indices: np.ndarray, width: int) -> np.ndarray:
    """(L, N) int64: for each (layer, neuron), how many of the documents' NAGs contain it.

    Counts add up across shards, so a pool's background is the sum of its shards' counts.
    """
    return build_profile(indices, width)[0]


def contrastive_profile(target_counts: np.ndarray, pool_counts: np.ndarray, smoothing: float = 0.5) -> np.ndarray:
    """(L, N) float64 log ratio of the target's to the pool's smoothed neuron frequencies."""
    if target_counts.shape != pool_counts.shape:
        raise ValueError(f"target counts {target_counts.shape} and pool counts {pool_counts.shape} differ in shape: "
                         "they must come from the same model and neuron type")
    if smoothing <= 0:
        raise ValueError(f"smoothing must be positive, got {smoothing}")
    width = target_counts.shape[1]

    def log_freq(counts: np.ndarray) -> np.ndarray:
        counts = counts.astype(np.float64)
        return np.log(counts + smoothing) - np.log(counts.sum(axis=1, keepdims=True) + smoothing * width)

    return log_freq(target_counts) - log_freq(pool_counts)


def profile_frame(counts: np.ndarray) -> pl.DataFrame:
    """The non-zero part of a profile as rows (layer, neuron, count, weight)."""
    layers, neurons = np.nonzero(counts)
    c = counts[layers, neurons]
    totals = counts.sum(axis=1)
    return pl.DataFrame({
        "layer": layers.astype(np.int32),
        "neuron": neurons.astype(np.int32),
        "count": c.astype(np.int64),
        "weight": c / totals[layers],
    })


def profile_from_frame(frame: pl.DataFrame, num_layers: int, width: int) -> np.ndarray:
    weights = np.zeros((num_layers, width), np.float64)
    weights[frame["layer"].to_numpy(), frame["neuron"].to_numpy()] = frame["weight"].to_numpy()
    return weights


def top_neurons(counts: np.ndarray, n: int = 5) -> dict[int, list[tuple[int, float]]]:
    """Per layer, the n heaviest neurons with their weights (ties by lower index)."""
    out = {}
    for layer, row in enumerate(counts):
        total = row.sum()
        order = np.lexsort((np.arange(row.size), -row))[:n]
        out[layer] = [(int(k), float(row[k] / total) if total else 0.0) for k in order if row[k] > 0]
    return out
