"""Target profiles: the neuron graph a target activates (paper §2.4).

For layer l, neuron k's weight is the number of target NAGs that contain (l, k),
divided by the total count in that layer, so each layer's weights sum to 1:

    P[l, k] = c[l, k] / sum_j c[l, j],   c[l, k] = #{target docs whose top-K at layer l includes k}

The profile is a dense (L, N) float64 array: N is the layer width, at most 65,536.
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
