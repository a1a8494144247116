"""The distilled scorer: fit on a scored sample, score the rest, store it safely."""

from __future__ import annotations

import io

import numpy as np
import pytest

from nag_core.errors import NagInputError
from nag_core.signals.distilled import DistilledScorer, fit_distilled, sample_indices

MEDICAL = [
    "The patient was treated with antibiotics for pneumonia and the infection cleared.",
    "Blood pressure and heart rate were recorded before the patient received the drug.",
    "The physician diagnosed diabetes and prescribed insulin to the patient.",
    "Clinical trials showed the vaccine reduced infection in elderly patients.",
    "The nurse gave the patient a dose of the drug every six hours.",
    "Symptoms of the infection included fever, cough and chest pain in most patients.",
]
OTHER = [
    "The court dismissed the appeal because the contract was signed after the deadline.",
    "def add(a, b):\n    return a + b",
    "The striker scored twice and the home team won the final on Sunday.",
    "Interest rates rose in March and the bank reported lower quarterly profits.",
    "The train leaves the station at nine and arrives in the city before noon.",
    "for i in range(10):\n    print(i)",
]
HELD_OUT = ["A patient with a fever and an infection was given antibiotics by the physician.",
            "The team lost the match after the striker missed a penalty."]


def _fit(**options) -> DistilledScorer:
    texts = MEDICAL + OTHER
    scores = np.array([1.0] * len(MEDICAL) + [0.0] * len(OTHER)) + np.linspace(0, 0.1, len(texts))
    return fit_distilled(texts, scores, n_features=2 ** 16, **options)


def test_scores_unseen_documents_like_the_signal_it_imitates():
    s = _fit().score(HELD_OUT + ["", "   "])
    assert s.shape == (4,) and s.dtype == np.float64
    assert s[0] > s[1], s
    scorer = _fit()
    assert s[2] == s[3] == pytest.approx(scorer.intercept)  # no n-gram: the intercept


def test_rank_labels_ignore_the_scale_of_the_expensive_signal():
    texts = MEDICAL + OTHER
    raw = np.linspace(-3, 3, len(texts))
    a = fit_distilled(texts, raw, n_features=2 ** 16, labels="rank")
    b = fit_distilled(texts, np.exp(5 * raw), n_features=2 ** 16, labels="rank")  # same order, other scale
    np.testing.assert_array_equal(a.values, b.values)
    assert a.intercept == b.intercept
    c = fit_distilled(texts, raw, n_features=2 ** 16)  # the default fits the scores themselves
    assert not np.array_equal(a.values, c.values)


def test_fit_is_deterministic_and_bytes_round_trip_exactly():
    a, b = _fit(seed=5), _fit(seed=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    data = a.to_bytes()
    loaded = DistilledScorer.from_bytes(data)
    np.testing.assert_array_equal(loaded.indices, a.indices)
    np.testing.assert_array_equal(loaded.values, a.values)
    assert loaded.intercept == a.intercept and loaded.settings == a.settings
    assert loaded.settings["seed"] == 5 and loaded.settings["ngram_range"] == [1, 2]
    np.testing.assert_array_equal(loaded.score(HELD_OUT), a.score(HELD_OUT))
    assert loaded.to_bytes() == data


def test_stored_scorer_is_plain_arrays_and_damage_is_refused():
    data = _fit().to_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert sorted(z.files) == ["indices", "meta", "values"]
        assert all(z[k].dtype != object for k in z.files)
    with pytest.raises(NagInputError, match="re-fit"):
        DistilledScorer.from_bytes(b"not an npz")
    with pytest.raises(NagInputError, match="re-fit"):
        DistilledScorer.from_bytes(data[: len(data) // 2])


def test_bad_input_is_refused():
    with pytest.raises(NagInputError, match="2 texts but scores"):
        fit_distilled(["a", "b"], np.zeros(3))
    with pytest.raises(NagInputError, match="text 1"):
        fit_distilled(["a", "b"], np.array([0.0, np.nan]))
    with pytest.raises(NagInputError, match="labels"):
        fit_distilled(["a", "b"], np.zeros(2), labels="top")


def test_sample_indices_are_seeded_sorted_and_distinct():
    a = sample_indices(1000, 0.2, seed=0)
    assert a.size == 200 and a.dtype == np.int64
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 1000
    np.testing.assert_array_equal(a, sample_indices(1000, 0.2, seed=0))
    assert not np.array_equal(a, sample_indices(1000, 0.2, seed=1))
    assert sample_indices(3, 0.01, seed=0).size == 1  # never an empty sample of a non-empty pool
    assert sample_indices(0, 0.5, seed=0).size == 0
    np.testing.assert_array_equal(sample_indices(5, 1.0, seed=3), np.arange(5))
    with pytest.raises(NagInputError, match="fraction"):
        sample_indices(10, 0.0, seed=0)
