"""Word tokenisation and stable n-gram hashing shared by the lexical signals.

Tokens are lower-cased runs of word characters or of other non-space characters,
like NLTK's ``wordpunct_tokenize`` that DSIR uses: ``"x += 1;"`` -> ``x``, ``+=``, ``1``, ``;``.
Buckets come from BLAKE2b, not Python's ``hash``, so they are identical in every
process; each distinct n-gram is hashed once per call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(toks: Sequence[str], orders: Iterable[int] = (1, 2)) -> list[str]:
    """All n-grams of the given orders, joined by a space (unigrams first)."""
    out: list[str] = []
    for n in orders:
        out.extend(" ".join(toks[i: i + n]) for i in range(len(toks) - n + 1))
    return out


class Hasher:
    """Maps n-gram strings to buckets in [0, buckets), caching each distinct string."""

    def __init__(self, buckets: int):
        if buckets < 1:
            raise ValueError(f"buckets must be positive, got {buckets}")
        self.buckets = buckets
        self._cache: dict[str, int] = {}

    def bucket(self, gram: str) -> int:
        b = self._cache.get(gram)
        if b is None:
            h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")
            b = self._cache[gram] = h % self.buckets
        return b

    def buckets_of(self, text: str, orders: Iterable[int] = (1, 2)) -> np.ndarray:
        return np.fromiter((self.bucket(g) for g in ngrams(tokens(text), orders)), dtype=np.int64)
