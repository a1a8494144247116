"""Quality signals on texts small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nag_core.signals.quality import SIGNALS, quality_signals


def _one(text: str, **options) -> dict[str, float]:
    return {k: float(v[0]) for k, v in quality_signals([text], **options).items()}


def test_keys_types_and_lengths():
    out = quality_signals(["one two", "", "x += 1;"])
    assert tuple(out) == SIGNALS
    for v in out.values():
        assert v.dtype == np.float64 and v.shape == (3,)
    # words are the lexical signals' tokens: x, +=, 1, ;
    np.testing.assert_array_equal(out["quality_length"], [2, 0, 4])


def test_a_single_repeated_word():
    q = _one("a a a a a a")
    assert q == {"quality_length": 6.0, "quality_ngram_entropy": 0.0, "quality_alnum_share": 1.0,
                 "quality_repetition_ratio": 1.0}


@pytest.mark.parametrize("text, bits", [
    ("a b c d", 2.0),  # uniform over 4
    ("a b c d e f g h", 3.0),  # uniform over 8
    ("a a b b", 1.0),
    ("a a a b", -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))),  # 0.8113
    ("Word word WORD", 0.0),  # lower-cased: one word
])
def test_unigram_entropy_in_bits(text, bits):
    assert _one(text)["quality_ngram_entropy"] == pytest.approx(bits, abs=1e-12)


def test_bigram_entropy_when_asked():
    # bigrams: (a b), (b a), (a b) -> p = 2/3, 1/3
    assert _one("a b a b", entropy_n=2)["quality_ngram_entropy"] == pytest.approx(
        -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3)), abs=1e-12)


@pytest.mark.parametrize("text, share", [
    ("ab, c!", 3 / 5),  # a b c of a b , c !
    ("é1_", 2 / 3),  # accented letters and digits count; "_" does not
    ("   \n\t", 0.0),
    ("<<>>", 0.0),
])
def test_alnum_share(text, share):
    assert _one(text)["quality_alnum_share"] == pytest.approx(share, abs=1e-12)


def test_repetition_counts_words_covered_by_a_repeated_five_gram():
    # "a b c d e" occurs at words 0 and 6: words 0-4 and 6-10 are covered, "f" (word 5) is not
    assert _one("a b c d e f a b c d e")["quality_repetition_ratio"] == pytest.approx(10 / 11)
    assert _one("the quick brown fox jumps over the lazy dog")["quality_repetition_ratio"] == 0.0
    # bigrams (a b) at 0 and 2 cover words 0..3 of 5
    assert _one("a b a b c", repetition_n=2)["quality_repetition_ratio"] == pytest.approx(4 / 5)
    # fewer than n words: no n-gram can repeat
    assert _one("a a a a", repetition_n=5)["quality_repetition_ratio"] == 0.0


def test_empty_and_whitespace_texts_have_defined_values():
    out = quality_signals(["", "   \n  "])
    for v in out.values():
        np.testing.assert_array_equal(v, [0.0, 0.0])


def test_boilerplate_scores_worse_than_prose():
    prose = ("The committee reviewed the proposal in March and asked for a revised budget, which the authors "
             "submitted two weeks later with a shorter timeline and fewer staff.")
    spam = "buy now " * 20 + "| | | ### >>> <<<"
    out = quality_signals([prose, spam])
    assert out["quality_ngram_entropy"][0] > out["quality_ngram_entropy"][1]
    assert out["quality_alnum_share"][0] > out["quality_alnum_share"][1]
    assert out["quality_repetition_ratio"][0] == 0.0 < out["quality_repetition_ratio"][1]


def test_bad_order_is_refused():
    with pytest.raises(ValueError, match="n-gram orders"):
        quality_signals(["x"], repetition_n=0)
