"""DSIR: data selection with importance resampling (Xie et al., 2023, §3).

Each text x becomes hashed n-gram features: its unigrams and bigrams (see
``ngrams.tokens``), each hashed into one of B buckets (default 10,000). Two
bag-of-n-grams models over the buckets are fitted with add-one smoothing:

    p_target[b] = (c_target[b] + 1) / (C_target + B)      (counts over the target texts)
    p_raw[b]    = (c_raw[b] + 1) / (C_raw + B)            (counts over the raw pool)

and a document's log importance weight is

    log w(x) = sum_{g in G(x)} ( log p_target[h(g)] - log p_raw[h(g)] ),

a sum over its n-grams G(x). A sum grows with length in either direction, so a long
document's weight is dominated by its length rather than by what it is about, and
the ranking mostly sorts documents by size. The score here is the **per-n-gram mean**,
log w(x) / |G(x)| (the log-ratio of the geometric-mean n-gram probabilities): a
length-free measure of how target-like a typical n-gram of x is. ``normalize=False``
gives the raw sum. A text with no n-grams scores 0 (equally likely under both models).

DSIR resamples with the Gumbel top-k trick; a deterministic ranking by log w is its
zero-temperature limit and is what the budgeted selection here uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from nag_core.signals.ngrams import Hasher

DEFAULT_BUCKETS = 10_000


def counts(texts: Iterable[str], hasher: Hasher, orders=(1, 2)) -> np.ndarray:
    """Bucketed n-gram counts (B,) of ``texts``; counts of disjoint parts of a pool add up."""
    total = np.zeros(hasher.buckets, np.float64)
    for t in texts:
        total += np.bincount(hasher.buckets_of(t, orders), minlength=hasher.buckets)
    return total


def log_probs(bucket_counts: np.ndarray) -> np.ndarray:
    """Add-one-smoothed log probabilities of a bucketed n-gram model."""
    return np.log(bucket_counts + 1.0) - np.log(bucket_counts.sum() + bucket_counts.size)


def fit(texts: Sequence[str], hasher: Hasher, orders=(1, 2)) -> np.ndarray:
    """Add-one-smoothed log probabilities (B,) of the bucketed n-gram model of ``texts``."""
    return log_probs(counts(texts, hasher, orders))


def score_with(texts: Sequence[str], log_ratio: np.ndarray, hasher: Hasher, orders=(1, 2),
               normalize: bool = True) -> np.ndarray:
    """Each text's summed (or, ``normalize``, mean) ``log_ratio`` over its n-gram buckets."""
    out = np.zeros(len(texts), np.float64)
    for i, t in enumerate(texts):
        b = hasher.buckets_of(t, orders)
        if b.size:
            total = float(log_ratio[b].sum())
            out[i] = total / b.size if normalize else total
    return out


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, buckets: int = DEFAULT_BUCKETS,
          orders: tuple[int, ...] = (1, 2), normalize: bool = True,
          raw_texts: Sequence[str] | None = None) -> np.ndarray:
    """log p_target(x)/p_raw(x) per document (per n-gram mean unless ``normalize=False``).

    The raw model is fitted on ``raw_texts`` if given, else on the pool itself. A pool too
    big for memory is scored in two passes over its parts: sum :func:`counts` of every
    part, then :func:`score_with` each part (the pipeline's ``dsir_scores`` does this).
    """
    if not target_texts:
        raise ValueError("dsir needs at least one target text")
    hasher = Hasher(buckets)
    log_raw = fit(pool_texts if raw_texts is None else raw_texts, hasher, orders)
    return score_with(pool_texts, fit(target_texts, hasher, orders) - log_raw, hasher, orders, normalize)
