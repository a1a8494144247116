"""Per-document quality signals in the spirit of the Gopher and RefinedWeb heuristic filters.

They need no target and no model: each is a property of one document, computed in one
pass over its text, so they can run on every shard and be thresholded or combined later.
Words are the lexical signals' tokens (``ngrams.tokens``: lower-cased runs of word
characters or of other non-space characters), so ``x += 1;`` is 4 words.

* ``quality_length``: number of words, |w|. Words rather than characters because budgets
  and the Gopher length bounds (50 to 100,000 words) are counted in words.
* ``quality_ngram_entropy``: Shannon entropy in bits of the document's word unigram
  distribution, H = -sum_g p_g log2 p_g with p_g = c_g / |w| (n = 1 by default,
  ``entropy_n``). A text of m equally frequent distinct words has H = log2 m; boilerplate
  and spam that repeat a few words score low.
* ``quality_alnum_share``: alphanumeric characters (``str.isalnum``) / non-whitespace
  characters. Markup, tables of symbols and encoding debris score low.
* ``quality_repetition_ratio``: Gopher's "fraction of characters in duplicate n-grams",
  counted in words: with word n-grams at n = 5 (``repetition_n``), the share of words that
  lie inside at least one occurrence of an n-gram occurring two or more times in the
  document,

      r = |{i : word i is covered by an occurrence of some g with c_g >= 2}| / |w|,

  so ``"a a a a a a"`` gives 1.0 and a text with no repeated 5-gram gives 0.0.

Defined values for degenerate texts (no NaN): an empty or whitespace-only text has length
0, entropy 0, alnum share 0 and repetition 0; a text with fewer than n words has
repetition 0 (no n-gram can repeat).

Cost: one Python pass per document; about 1,900 docs/s on one core of this project's
shared 2-core AMD EPYC for the dev pool (5,235 documents, mean 246 words).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from nag_core.signals.ngrams import tokens

SIGNALS = ("quality_length", "quality_ngram_entropy", "quality_alnum_share", "quality_repetition_ratio")
ENTROPY_N = 1
REPETITION_N = 5
_SPACE = re.compile(r"\s+")
_ALNUM = re.compile(r"[^\W_]+")  # \w minus "_" is exactly str.isalnum over Unicode


def ngram_entropy(words: Sequence[str], n: int = ENTROPY_N) -> float:
    """H in bits of the word n-gram distribution; 0 when there is no n-gram."""
    grams = Counter(zip(*(words[i:] for i in range(n))))
    if not grams:
        return 0.0
    c = np.fromiter(grams.values(), np.float64, len(grams))
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def repetition_ratio(words: Sequence[str], n: int = REPETITION_N) -> float:
    """Share of words covered by an occurrence of a duplicated word n-gram (see module docstring)."""
    m = len(words) - n + 1
    if m < 2:
        return 0.0
    ids: dict[tuple, int] = {}
    gram_ids = np.fromiter((ids.setdefault(g, len(ids)) for g in zip(*(words[i:] for i in range(n)))), np.int64, m)
    if len(ids) == m:
        return 0.0
    repeated = np.bincount(gram_ids)[gram_ids] >= 2  # per start position
    # word i is covered iff some repeated start lies in [i - n + 1, i]: a length-n running OR
    starts = np.concatenate(([0], np.cumsum(repeated)))
    lo = np.clip(np.arange(len(words)) - n + 1, 0, m)
    hi = np.clip(np.arange(len(words)) + 1, 0, m)
    return float(((starts[hi] - starts[lo]) > 0).mean())


def alnum_share(text: str) -> float:
    """Alphanumeric / non-whitespace characters; 0 for a text with no visible character."""
    visible = len(_SPACE.sub("", text))
    if visible == 0:
        return 0.0
    return sum(map(len, _ALNUM.findall(text))) / visible


def quality_signals(texts: Sequence[str], *, entropy_n: int = ENTROPY_N,
                    repetition_n: int = REPETITION_N) -> dict[str, np.ndarray]:
    """The four signals of the module docstring, each a float64 array of ``len(texts)``."""
    if entropy_n < 1 or repetition_n < 1:
        raise ValueError(f"n-gram orders must be >= 1, got entropy_n={entropy_n}, repetition_n={repetition_n}")
    n = len(texts)
    out = {k: np.zeros(n, np.float64) for k in SIGNALS}
    for i, text in enumerate(texts):
        words = tokens(text)
        out["quality_length"][i] = len(words)
        out["quality_ngram_entropy"][i] = ngram_entropy(words, entropy_n)
        out["quality_alnum_share"][i] = alnum_share(text)
        out["quality_repetition_ratio"][i] = repetition_ratio(words, repetition_n)
    return out
