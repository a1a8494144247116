"""Okapi BM25 of each pool document against the targets, as one centroid query.

Terms are lower-cased word tokens (``\\w+``). With document frequencies and lengths
taken from the pool (N documents, average length avgdl),

    BM25(q, d) = sum_t q[t] * idf[t] * tf(t, d) (k1 + 1) / (tf(t, d) + k1 (1 - b + b |d| / avgdl)),
    idf[t]     = log(1 + (N - df[t] + 0.5) / (df[t] + 0.5))          (non-negative, as in Lucene)

where q[t] counts t in the query. The score is linear in q, so scoring against the
**centroid query** q[t] = mean over target examples of their counts of t is exactly
the **mean BM25 over the target examples** used one at a time as queries. That is the
choice here: every example votes with equal weight, and one pass over the pool
suffices however many examples there are. (The max over examples would reward a
document for matching a single example, e.g. a near-copy, which is a different
question: contamination rather than domain.) Defaults k1 = 1.5, b = 0.75.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Mean BM25 of each pool text over the target texts as queries (= BM25 of the centroid query)."""
    if not target_texts:
        raise ValueError("bm25 needs at least one target text")
    vocab: dict[str, int] = {}
    doc_ids, term_ids, tfs, lengths = [], [], [], np.zeros(len(pool_texts), np.float64)
    for i, text in enumerate(pool_texts):
        terms = _terms(text)
        lengths[i] = len(terms)
        if not terms:
            continue
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), dtype=np.int64)
        uniq, counts = np.unique(ids, return_counts=True)
        doc_ids.append(np.full(uniq.size, i, np.int64))
        term_ids.append(uniq)
        tfs.append(counts.astype(np.float64))
    n = len(pool_texts)
    if not vocab:
        return np.zeros(n, np.float64)
    doc_ids, term_ids, tfs = np.concatenate(doc_ids), np.concatenate(term_ids), np.concatenate(tfs)
    df = np.bincount(term_ids, minlength=len(vocab)).astype(np.float64)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    query = np.zeros(len(vocab), np.float64)
    for text in target_texts:
        for t in _terms(text):
            j = vocab.get(t)
            if j is not None:  # a term absent from the pool contributes nothing
                query[j] += 1.0
    query /= len(target_texts)
    avgdl = max(lengths.mean(), 1e-9)
    norm = k1 * (1.0 - b + b * lengths[doc_ids] / avgdl)
    contrib = query[term_ids] * idf[term_ids] * tfs * (k1 + 1.0) / (tfs + norm)
    return np.bincount(doc_ids, weights=contrib, minlength=n)
