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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_WORD = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class PoolStats:
    """What BM25 needs from the whole pool: document frequencies, the document count and total length.

    Built part by part (:meth:`add`), so a pool is read one shard at a time.
    """

    vocab: dict[str, int] = field(default_factory=dict)
    df: list[int] = field(default_factory=list)
    documents: int = 0
    total_length: int = 0

    def add(self, texts: Iterable[str]) -> PoolStats:
        for text in texts:
            terms = _terms(text)
            self.documents += 1
            self.total_length += len(terms)
            for t in set(terms):
                j = self.vocab.setdefault(t, len(self.vocab))
                if j == len(self.df):
                    self.df.append(0)
                self.df[j] += 1
        return self


def score_with(texts: Sequence[str], stats: PoolStats, target_texts: Sequence[str], *, k1: float = 1.5,
               b: float = 0.75) -> np.ndarray:
    """BM25 of ``texts`` (part of the pool ``stats`` describes) against the centroid of ``target_texts``."""
    if not target_texts:
        raise ValueError("bm25 needs at least one target text")
    n, out = stats.documents, np.zeros(len(texts), np.float64)
    if not stats.vocab:
        return out
    df = np.asarray(stats.df, np.float64)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    query = np.zeros(len(stats.vocab), np.float64)
    for text in target_texts:
        for t in _terms(text):
            j = stats.vocab.get(t)
            if j is not None:  # a term absent from the pool contributes nothing
                query[j] += 1.0
    query /= len(target_texts)
    avgdl = max(stats.total_length / max(n, 1), 1e-9)
    for i, text in enumerate(texts):
        terms = _terms(text)
        if not terms:
            continue
        ids, tfs = np.unique(np.fromiter((stats.vocab[t] for t in terms), dtype=np.int64), return_counts=True)
        tfs = tfs.astype(np.float64)
        norm = k1 * (1.0 - b + b * len(terms) / avgdl)
        out[i] = float((query[ids] * idf[ids] * tfs * (k1 + 1.0) / (tfs + norm)).sum())
    return out


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Mean BM25 of each pool text over the target texts as queries (= BM25 of the centroid query).

    A pool too big for memory: :meth:`PoolStats.add` each part, then :func:`score_with`
    each part (the pipeline's ``bm25_scores`` does this).
    """
    return score_with(pool_texts, PoolStats().add(pool_texts), target_texts, k1=k1, b=b)
