"""Graphs, scores and budgets against the paper's formulas written out slowly."""

import numpy as np
import polars as pl
import pytest

from nag_core.errors import NagInputError
from nag_core.graph import build_profile, contrastive_profile, neuron_counts, profile_frame, profile_from_frame, top_neurons
from nag_core.scoring import similarity
from nag_core.selection import equal_budget_mixture, select_by_budget


def dict_profile(target_idx):
    """Reference formula: per layer, neuron frequency among target NAGs, normalised."""
    n, L, K = target_idx.shape
    profile = []
    for layer in range(L):
        counts = {}
        for doc in range(n):
            for k in target_idx[doc, layer]:
                counts[int(k)] = counts.get(int(k), 0) + 1
        total = sum(counts.values())
        profile.append({k: c / total for k, c in counts.items()})
    return profile


def dict_similarity(idx, profile):
    return [sum(sum(profile[layer].get(int(k), 0.0) for k in idx[d, layer]) for layer in range(idx.shape[1])) / idx.shape[1]
            for d in range(idx.shape[0])]


def test_profile_and_similarity_match_reference_formula():
    rng = np.random.default_rng(0)
    width = 50
    target = np.stack([np.stack([rng.choice(width, 5, replace=False) for _ in range(4)]) for _ in range(30)]).astype(np.uint16)
    pool = np.stack([np.stack([rng.choice(width, 5, replace=False) for _ in range(4)]) for _ in range(200)]).astype(np.uint16)
    counts, weights = build_profile(target, width)
    ref = dict_profile(target)
    for layer in range(4):
        assert weights[layer].sum() == pytest.approx(1.0)
        for k, w in ref[layer].items():
            assert weights[layer, k] == pytest.approx(w)
    scores = similarity(pool, weights)
    assert np.allclose(scores, dict_similarity(pool, ref), atol=1e-12)
    assert ((scores >= 0) & (scores <= 1)).all()
    # A document made of each layer's most frequent neurons scores above every random one.
    best = np.argsort(-counts, axis=1, kind="stable")[:, :5][None].astype(np.uint16)
    assert similarity(best, weights)[0] > scores.max()


def test_contrastive_profile_matches_log_ratio_written_out():
    rng = np.random.default_rng(2)
    width, smoothing = 12, 0.5
    target = rng.integers(0, width, size=(9, 2, 3)).astype(np.uint16)
    pool = rng.integers(0, width, size=(40, 2, 3)).astype(np.uint16)
    weights = contrastive_profile(neuron_counts(target, width), neuron_counts(pool, width), smoothing)
    for layer in range(2):
        t_counts = [int((target[:, layer] == k).sum()) for k in range(width)]
        p_counts = [int((pool[:, layer] == k).sum()) for k in range(width)]
        for k in range(width):
            expected = (np.log((t_counts[k] + smoothing) / (sum(t_counts) + smoothing * width))
                        - np.log((p_counts[k] + smoothing) / (sum(p_counts) + smoothing * width)))
            assert weights[layer, k] == pytest.approx(expected, abs=1e-12)
    # A target that looks exactly like the pool has nothing to prefer.
    assert np.allclose(contrastive_profile(neuron_counts(pool, width), neuron_counts(pool, width)), 0.0)


def test_contrastive_profile_ignores_neurons_every_document_fires():
    """Neuron 0 is in every NAG (a generic neuron); neuron 1 marks the target's kind of text.

    The frequency profile scores a generic-only document as high as a target-like one;
    the contrastive profile ranks the target-like document first.
    """
    width = 8
    target = np.array([[[0, 1]]] * 10, np.uint16)  # (10 docs, 1 layer, K=2)
    pool = np.array([[[0, 1]]] * 5 + [[[0, k]] for k in (2, 3, 4, 5, 6, 7) for _ in range(5)], np.uint16)
    docs = np.array([[[0, 1]], [[0, 2]]], np.uint16)  # target-like, generic
    freq = similarity(docs, build_profile(target, width)[1])
    contrast = similarity(docs, contrastive_profile(neuron_counts(target, width), neuron_counts(pool, width)))
    assert freq[0] == pytest.approx(1.0) and freq[1] == pytest.approx(0.5)
    assert contrast[0] > 0 > contrast[1]
    assert contrastive_profile(neuron_counts(target, width), neuron_counts(pool, width))[0, 0] == pytest.approx(
        np.log(10.5 / 24) - np.log(35.5 / 74))


def test_contrastive_profile_rejects_mismatched_or_unsmoothed_counts():
    counts = np.ones((2, 4), np.int64)
    with pytest.raises(ValueError, match="same model and neuron type"):
        contrastive_profile(counts, np.ones((2, 5), np.int64))
    with pytest.raises(ValueError, match="smoothing must be positive"):
        contrastive_profile(counts, counts, smoothing=0)


def test_profile_round_trips_through_its_table_form():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 30, size=(10, 3, 4)).astype(np.uint16)
    counts, weights = build_profile(target, 30)
    frame = profile_frame(counts)
    assert np.allclose(profile_from_frame(frame, 3, 30), weights)
    tops = top_neurons(counts, 2)
    assert tops[0][0][0] == int(np.lexsort((np.arange(30), -counts[0]))[0])


def test_similarity_rejects_profile_from_other_model():
    with pytest.raises(ValueError, match="different models"):
        similarity(np.zeros((2, 3, 4), np.uint16), np.zeros((6, 10)))


def frame(scores, tokens, ids=None):
    ids = ids or [f"d{i:02d}" for i in range(len(scores))]
    return pl.DataFrame({"docid": ids, "score": scores, "token_num": tokens})


def test_budget_keeps_best_prefix_within_floor_of_fraction():
    scored = frame([0.9, 0.5, 0.7, 0.7, 0.1], [10, 10, 10, 10, 60])  # 100 tokens, budget 30
    kept = select_by_budget(scored, 0.3)
    assert kept["docid"].to_list() == ["d00", "d02", "d03"]  # tie 0.7 broken by docid
    assert kept["cum_tokens"].to_list() == [10, 20, 30]
    assert kept["rank"].to_list() == [1, 2, 3]


def test_budget_stops_at_first_overflow_and_never_returns_empty():
    kept = select_by_budget(frame([0.9, 0.8, 0.7], [5, 50, 5]), 0.2)  # budget 12: 5, then 55 > 12
    assert kept["docid"].to_list() == ["d00"]
    with pytest.raises(NagInputError, match=r"budget of 6 tokens .* best-ranked document alone has 50 tokens "
                                            r"and the smallest 5\. Raise budget_fraction to at least 0\.834"):
        select_by_budget(frame([0.9, 0.8, 0.7], [50, 5, 5]), 0.1)  # budget 6 < first doc: selects nothing
    assert select_by_budget(frame([0.9, 0.8, 0.7], [50, 5, 5]), 0.834)["docid"].to_list() == ["d00"]  # the fix works


def test_budget_rejects_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        select_by_budget(frame([0.1], [1]), 0)


def test_mixture_gives_each_target_an_equal_share():
    a = frame([0.9, 0.8, 0.1, 0.2], [10, 10, 10, 10])
    b = frame([0.1, 0.2, 0.9, 0.8], [10, 10, 10, 10])
    mixed = equal_budget_mixture({"a": a, "b": b}, 0.5)  # 20 tokens total budget -> 10 each
    assert mixed.filter(pl.col("target") == "a")["docid"].to_list() == ["d00"]
    assert mixed.filter(pl.col("target") == "b")["docid"].to_list() == ["d02"]
    shared = equal_budget_mixture({"a": a, "b": a}, 0.5)
    assert shared["copies"].to_list() == [2, 2]  # the paper keeps a document once per target
    with pytest.raises(NagInputError, match=r"0.2, shared by 2 targets, gives a budget of 4 tokens for target 'a'"):
        equal_budget_mixture({"a": a, "b": b}, 0.2)  # 4 tokens each < 10 tokens: nothing for either


def test_threaded_scoring_is_bit_identical_to_one_thread():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 64, size=(20_000, 4, 5)).astype(np.uint16)
    _, weights = build_profile(rng.integers(0, 64, size=(50, 4, 5)).astype(np.uint16), 64)
    assert np.array_equal(similarity(idx, weights, workers=1), similarity(idx, weights, workers=3))
