"""The catalogue of selection signals: which asset computes each, over which partitions.

A *family* is one asset that writes one or more signals into the warehouse ``signals``
table. Families differ in what they depend on, and so in how they are partitioned:

* per (model, target): NAG (needs the model's activation caches and the target graph),
  embedding cosine (needs the model's pool embeddings);
* per target: DSIR, BM25 (lexical, model-free), gradient influence (the proxy LM);
* per shard: quality signals (target-free: a document's own length, entropy, ...);
* per (model, target) again: the distilled scorer (a hashed n-gram ridge model fitted on
  a seeded sample of one NAG signal, then run on every kept document).

This module is declarative and imports nothing heavy, so the freshness planner, the
recipe parser and the Dagster layer can all read it without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    asset: str
    dims: tuple[str, ...]  # partition dimensions, in Dagster's (sorted) order
    signals: tuple[str, ...]
    per_target: bool  # False: one value per document, shared by every target
    description: str


FAMILIES: dict[str, Family] = {f.asset: f for f in (
    Family("influence_scores", ("model", "target"), ("nag_frequency", "nag_contrastive", "nag_good", "nag_bad"), True,
           "NAG similarity: frequency profile (paper), contrastive profile (log ratio to the pool), and the contrastive "
           "score split into its good (positive-weight) and bad (negative-weight) neurons."),
    Family("embedding_scores", ("model", "target"), ("embedding",), True,
           "Cosine of each document's mean-pooled embedding to the target centroid."),
    Family("dsir_scores", ("target",), ("dsir",), True,
           "DSIR: per-n-gram mean log importance ratio of hashed bag-of-n-gram models (target vs pool)."),
    Family("bm25_scores", ("target",), ("bm25",), True,
           "Okapi BM25 of each document against the centroid query of the target examples."),
    Family("gradient_scores", ("target",), ("gradient",), True,
           "LESS-style gradient influence: cosine of a document's projected loss gradient under the proxy LM "
           "to the mean target gradient."),
    Family("quality_signals", ("shard",), ("quality_length", "quality_ngram_entropy", "quality_alnum_share",
                                          "quality_repetition_ratio", "quality_perplexity"), False,
           "Target-free document quality: length, word n-gram entropy, alphanumeric share, repetition ratio, and "
           "bits per byte under the proxy LM."),
    Family("distilled_scores", ("model", "target"), ("distilled_nag",), True,
           "A cheap scorer distilled from NAG (BETR / PreSelect): ridge regression of one NAG signal "
           "(signals.distilled.signal, default nag_contrastive) of a seeded sample of the kept pool on hashed word "
           "uni+bigrams, then run on every kept document; the fitted scorer is kept for pools too big to extract."),
)}

SIGNAL_FAMILY: dict[str, str] = {s: f.asset for f in FAMILIES.values() for s in f.signals}
SIGNALS: tuple[str, ...] = tuple(SIGNAL_FAMILY)

# Families that can be switched on or off in nag.yaml (``signals.families``); NAG is always on.
OPTIONAL = ("embedding", "dsir", "bm25", "gradient", "quality", "perplexity", "distilled")
DEFAULT_ENABLED = ("embedding", "dsir", "bm25", "quality")
FAMILY_OF_OPTION = {"embedding": "embedding_scores", "dsir": "dsir_scores", "bm25": "bm25_scores",
                    "gradient": "gradient_scores", "quality": "quality_signals", "perplexity": "quality_signals",
                    "distilled": "distilled_scores"}


def per_target(signal: str) -> bool:
    return FAMILIES[SIGNAL_FAMILY[signal]].per_target
