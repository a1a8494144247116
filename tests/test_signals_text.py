"""The baseline scorers on a miniature pool with three clear domains.

Each test asserts what a user comparing selectors would check: the scores rank an
in-domain document above off-domain ones, lie in the documented range, and are
reproducible; plus the identities each module's docstring promises (DSIR's per-n-gram
mean, BM25's centroid query = mean over queries).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nag_core import signals
from nag_core.signals import bm25, dsir, embedding, nag, random_baseline
from nag_core.signals.ngrams import Hasher, ngrams, tokens

MEDICAL_TARGETS = [
    "A 45-year-old patient presents with chest pain and shortness of breath. Which drug is the first-line treatment?",
    "Which enzyme deficiency causes the accumulation of glycogen in the liver of a patient?",
    "The physician prescribed antibiotics to treat the bacterial infection in the patient's lungs.",
]
POOL = [
    # 0: medical
    "Patients with pneumonia were treated with antibiotics; the clinical outcome improved and the infection cleared.",
    # 1: legal
    "The court granted the defendant's motion to dismiss, holding that the plaintiff lacked standing under the statute.",
    # 2: code
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    # 3: medical
    "Liver enzyme levels in the patient rose after treatment with the drug, and the physician stopped the therapy.",
    # 4: sports news
    "The striker scored twice in the second half as the home team won the championship final on Sunday.",
]
MEDICAL = [0, 3]
OTHER = [1, 2, 4]


def _separates(scores: np.ndarray) -> bool:
    return min(scores[i] for i in MEDICAL) > max(scores[i] for i in OTHER)


@pytest.fixture(scope="module")
def minilm():
    from nag_core.signals._model import default_model

    return default_model("cpu")


# ---------------------------------------------------------------- random

def test_random_is_seeded_and_uniform():
    a = random_baseline.score(POOL, MEDICAL_TARGETS, seed=3)
    assert a.shape == (len(POOL),)
    np.testing.assert_array_equal(a, random_baseline.score(POOL, MEDICAL_TARGETS, seed=3))
    assert not np.array_equal(a, random_baseline.score(POOL, MEDICAL_TARGETS, seed=4))
    big = random_baseline.score(["x"] * 20000, [], seed=0)
    assert big.min() >= 0 and big.max() < 1 and abs(big.mean() - 0.5) < 0.01


# ---------------------------------------------------------------- n-grams

def test_tokens_and_bigrams_follow_wordpunct():
    assert tokens("Return a+b; x") == ["return", "a", "+", "b", ";", "x"]
    assert ngrams(["a", "b", "c"]) == ["a", "b", "c", "a b", "b c"]


def test_hash_buckets_are_stable_across_processes():
    h = Hasher(10_000)
    expected = int.from_bytes(hashlib.blake2b(b"patient", digest_size=8).digest(), "little") % 10_000
    assert h.bucket("patient") == expected
    assert list(h.buckets_of("the patient", orders=(1,))) == [h.bucket("the"), expected]


# ---------------------------------------------------------------- DSIR

def test_dsir_ranks_medical_documents_above_the_rest():
    s = dsir.score(POOL, MEDICAL_TARGETS)
    assert _separates(s), s


def test_dsir_score_is_the_per_ngram_mean_of_the_log_ratio():
    raw = dsir.score(POOL, MEDICAL_TARGETS, normalize=False)
    mean = dsir.score(POOL, MEDICAL_TARGETS)
    h = Hasher(dsir.DEFAULT_BUCKETS)
    n_grams = np.array([h.buckets_of(t).size for t in POOL])
    np.testing.assert_allclose(mean, raw / n_grams, rtol=1e-12)
    # A text with no n-grams is equally likely under both models.
    assert dsir.score(["   ", POOL[0]], MEDICAL_TARGETS)[0] == 0.0


def test_dsir_raw_model_can_come_from_another_sample():
    s = dsir.score(POOL[:2], MEDICAL_TARGETS, raw_texts=POOL)
    assert s[0] > s[1]


# ---------------------------------------------------------------- BM25

def test_bm25_ranks_medical_documents_above_the_rest():
    s = bm25.score(POOL, MEDICAL_TARGETS)
    assert _separates(s), s
    assert (s >= 0).all()


def test_bm25_centroid_query_equals_mean_over_example_queries():
    together = bm25.score(POOL, MEDICAL_TARGETS)
    one_by_one = np.mean([bm25.score(POOL, [q]) for q in MEDICAL_TARGETS], axis=0)
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12)


def test_bm25_prefers_the_shorter_of_two_documents_with_the_same_match():
    short = "patient antibiotics"
    long = "patient antibiotics " + " ".join(["weather"] * 40)
    s = bm25.score([short, long, "nothing relevant here"], ["patient antibiotics"])
    assert s[0] > s[1] > s[2] == 0.0


# ---------------------------------------------------------------- embedding

def test_embedding_cosine_is_bounded_and_favours_medical(minilm):
    model, tok = minilm
    s = embedding.score(POOL, MEDICAL_TARGETS, model=model, tokenizer=tok)
    assert s.shape == (len(POOL),) and (s >= -1).all() and (s <= 1).all()
    assert _separates(s), s


def test_embedding_of_a_text_does_not_depend_on_its_batch(minilm):
    model, tok = minilm
    alone = embedding.embed([POOL[2]], model, tok)
    batched = embedding.embed(POOL, model, tok, batch_size=4)
    np.testing.assert_allclose(alone[0], batched[2], atol=1e-4)
    # A document identical to the only target has cosine 1.
    same = embedding.cosine_to_centroid(batched, batched[[0]])
    assert same[0] == pytest.approx(1.0, abs=1e-6) and same.max() == same[0]


# ---------------------------------------------------------------- NAG

def test_nag_scores_are_in_unit_interval_and_a_target_copy_scores_highest(minilm):
    model, tok = minilm
    pool = POOL + [MEDICAL_TARGETS[0]]
    s = nag.score(pool, MEDICAL_TARGETS, model=model, tokenizer=tok)
    assert s.shape == (len(pool),) and (s >= 0).all() and (s <= 1).all()
    assert s.argmax() == len(pool) - 1
    # The medical documents score above the code snippet, which activates a very different graph.
    assert min(s[i] for i in MEDICAL) > s[2]


def test_nag_from_indices_matches_the_end_to_end_scorer(minilm):
    model, tok = minilm
    ex = nag.extractor(model, tok)
    direct = nag.score_from_indices(nag.nag_features(POOL, ex), nag.nag_features(MEDICAL_TARGETS, ex), ex.width("fwd_up"))
    np.testing.assert_array_equal(direct, signals.score("nag", POOL, MEDICAL_TARGETS, model=model, tokenizer=tok))


def test_nag_contrastive_scores_against_the_pools_own_neuron_frequencies(minilm):
    from nag_core.graph import contrastive_profile, neuron_counts
    from nag_core.scoring import similarity

    model, tok = minilm
    s = signals.score("nag_contrastive", POOL, MEDICAL_TARGETS, model=model, tokenizer=tok)
    assert _separates(s)
    ex = nag.extractor(model, tok, top_k=nag.CONTRASTIVE_TOP_K)
    pool_idx, target_idx = nag.nag_features(POOL, ex), nag.nag_features(MEDICAL_TARGETS, ex)
    width = ex.width("fwd_up")
    weights = contrastive_profile(neuron_counts(target_idx, width), neuron_counts(pool_idx, width), 0.5)
    np.testing.assert_array_equal(s, similarity(pool_idx, weights))
    with pytest.raises(ValueError, match="unknown NAG profile 'tfidf'"):
        nag.score_from_indices(pool_idx, target_idx, width, profile="tfidf")


# ---------------------------------------------------------------- registry

def test_registry_dispatches_and_rejects_unknown_methods():
    assert set(signals.SCORERS) == {"random", "dsir", "bm25", "embedding", "nag", "nag_contrastive"}
    np.testing.assert_array_equal(signals.score("bm25", POOL, MEDICAL_TARGETS), bm25.score(POOL, MEDICAL_TARGETS))
    with pytest.raises(ValueError, match="unknown baseline"):
        signals.score("tfidf", POOL, MEDICAL_TARGETS)
    for method in ("dsir", "bm25"):
        with pytest.raises(ValueError, match="at least one target"):
            signals.score(method, POOL, [])


def test_lexical_signals_scored_part_by_part_equal_the_whole_pool_at_once():
    """The pipeline reads one shard at a time: pool statistics summed over parts, then each part scored."""
    parts = [POOL[:2], POOL[2:3], POOL[3:]]
    hasher = Hasher(dsir.DEFAULT_BUCKETS)
    raw = sum(dsir.counts(p, hasher) for p in parts)
    log_ratio = dsir.fit(MEDICAL_TARGETS, hasher) - dsir.log_probs(raw)
    by_part = np.concatenate([dsir.score_with(p, log_ratio, hasher) for p in parts])
    np.testing.assert_array_equal(by_part, dsir.score(POOL, MEDICAL_TARGETS))

    stats = bm25.PoolStats()
    for p in parts:
        stats.add(p)
    assert (stats.documents, stats.total_length) == (len(POOL), sum(len(bm25._terms(t)) for t in POOL))
    by_part = np.concatenate([bm25.score_with(p, stats, MEDICAL_TARGETS) for p in parts])
    np.testing.assert_array_equal(by_part, bm25.score(POOL, MEDICAL_TARGETS))
    assert by_part.max() > 0
