"""Near-dedup of short texts: words + word bigrams below ``short_text_words`` words.

Each test would fail on the old rule (word 5-grams at every length, ``short_text_words: 0``),
which the tests run side by side.
"""

from __future__ import annotations

import random

import polars as pl

from nag_core.minhash import MinHashSettings
from nag_core.near_dedup import dedup
from nag_core.settings import load_settings

NEW, OLD = MinHashSettings(), MinHashSettings(short_text_words=0)
BUG = "def clamp(value, low, high): return max(low, min(value, high)) if low <= high else max(high, min(value, low))"
FIX = BUG.replace("min(value, high)", "min(value, top)")  # one identifier changed


def _word_jaccard(a: str, b: str) -> float:
    sa, sb = set(NEW.normalize(a).split()), set(NEW.normalize(b).split())
    return len(sa & sb) / len(sa | sb)


def _removed(texts: list[str], settings: MinHashSettings) -> dict[str, str]:
    docs = pl.DataFrame({"docid": [f"d{i:03d}" for i in range(len(texts))], "text": texts, "shard": "s1"})
    res = dedup(docs, settings)
    return dict(zip(res.removed["removed_docid"].to_list(), res.removed["kept_docid"].to_list()))


def test_one_line_bug_and_fix_are_near_duplicates():
    assert 0.85 < _word_jaccard(BUG, FIX) < 1.0
    assert _removed([BUG, FIX], NEW) == {"d001": "d000"}
    assert _removed([BUG, FIX], OLD) == {}  # 5-gram Jaccard 0.52 (words + bigrams: 0.83): the old rule missed it


def test_short_edits_recalled_and_unrelated_short_texts_kept():
    rng = random.Random(11)
    vocab = [f"tok{i}" for i in range(3000)]
    sources = [" ".join(rng.sample(vocab, rng.randint(19, 49))) for _ in range(60)]
    edits = []
    for text in sources:  # one substitution: word-set J = (w-1)/(w+1) >= 0.9 for w >= 19
        words = text.split()
        words[rng.randrange(len(words))] = "changed"
        edits.append(" ".join(words))
    assert all(_word_jaccard(a, b) >= 0.9 for a, b in zip(sources, edits))
    texts = sources + edits
    pairs = {f"d{i + 60:03d}": f"d{i:03d}" for i in range(60)}
    new, old = _removed(texts, NEW), _removed(texts, OLD)
    assert new == pairs  # every copy caught, each against its own source, nothing else merged
    assert len(old) < 0.7 * len(pairs)


def test_reordered_tiny_texts_and_long_texts_keep_word_order():
    # <= 5 words: still one whole-text shingle, so a reordering is not a duplicate
    assert _removed(["x = y + 1", "y = x + 1"], NEW) == {}
    # 6-49 words: the same tokens in another order share the words but not the bigrams
    line = "result = total + count * scale - offset"
    swapped = "offset = scale + count * total - result"
    assert _word_jaccard(line, swapped) == 1.0 and _removed([line, swapped], NEW) == {}
    # >= 50 words: still 5-grams, so the same vocabulary in another order is not a duplicate
    rng = random.Random(12)
    words = [f"w{i}" for i in range(60)]
    shuffled = rng.sample(words, len(words))
    assert _removed([" ".join(words), " ".join(shuffled)], NEW) == {}


def test_short_text_words_is_a_setting(tmp_path):
    (tmp_path / "nag.yaml").write_text("dedup:\n  near:\n    short_text_words: 30\n")
    near = load_settings(tmp_path / "nag.yaml").dedup.near
    assert near.short_text_words == 30 and near.name == "w5u30_b20r6_s1"
    assert near.settings_hash not in {NEW.settings_hash, OLD.settings_hash}
