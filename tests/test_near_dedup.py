"""Seeded correctness tests for MinHash near-dedup (nag_core.minhash / nag_core.near_dedup)."""

from __future__ import annotations

import random

import datasketch
import numpy as np
import polars as pl
import pytest

from nag_core.errors import NagInputError
from nag_core.minhash import (MinHashSettings, collision_probability, hash_shingles, jaccard_sorted, s_curve,
                              shingles, signatures)
from nag_core.near_dedup import AUDIT_SCHEMA, band_rows, decontaminate, dedup, dedup_incremental

S = MinHashSettings()
_VOCAB = [f"w{i}" for i in range(20000)]


def _text(rng: random.Random, n: int = 200) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def _edit(rng: random.Random, text: str, k: int) -> str:
    words = text.split()
    for pos in rng.sample(range(len(words)), k):
        words[pos] = "edited" + str(pos)
    return " ".join(words)


def _frame(texts: list[str], shard: str = "s1", prefix: str = "d") -> pl.DataFrame:
    return pl.DataFrame({"docid": [f"{prefix}{i:04d}" for i in range(len(texts))], "text": texts, "shard": shard})


def _jaccard(a: str, b: str, settings: MinHashSettings = S) -> float:
    return jaccard_sorted(hash_shingles(shingles(a, settings)), hash_shingles(shingles(b, settings)))


def _check_accounting(docs: pl.DataFrame, result, prior: set[str] = frozenset()) -> None:
    kept, removed = set(result.kept_docids), set(result.removed["removed_docid"].to_list())
    assert kept | removed == set(docs["docid"].to_list())
    assert not kept & removed
    assert len(result.removed) == len(removed)  # one audit row per removed doc
    assert result.removed.schema == pl.Schema(AUDIT_SCHEMA)
    # no cluster keeps two docs: each cluster names one keeper, which is kept
    per_cluster = result.removed.group_by("cluster_id").agg(pl.col("kept_docid").n_unique())
    assert (per_cluster["kept_docid"] == 1).all()
    assert set(result.removed["kept_docid"].to_list()) <= kept | prior


@pytest.mark.parametrize("settings", [
    MinHashSettings(),
    MinHashSettings(short_text_words=0),
    MinHashSettings(num_perm=64, bands=16, rows=4, seed=7),
    MinHashSettings(shingle_type="char", shingle_size=7, normalizer="nfkc_casefold_ws"),
])
def test_signatures_equal_plain_datasketch(settings):
    rng = random.Random(0)
    texts = [_text(rng, rng.randint(1, 300)) for _ in range(20)]
    texts += ["Größe ÉCOLE  naïve — ﬁne Ⅻ 東京タワーに行きました。", "short", "", "!!! ???", "a b c d e f"]
    sigs = signatures([hash_shingles(shingles(t, settings)) for t in texts], settings)
    for text, sig in zip(texts, sigs):
        m = datasketch.MinHash(num_perm=settings.num_perm, seed=settings.seed)
        for sh in shingles(text, settings):
            m.update(sh)
        assert np.array_equal(m.hashvalues, sig), text[:40]


def test_word_shingles_are_joined_words():
    plain = MinHashSettings(short_text_words=0)
    words = S.normalize("The  Quick, brown FOX; jumps over the lazy dog!").split()
    assert words[:3] == ["the", "quick", "brown"]
    expected = list(dict.fromkeys(" ".join(words[i:i + 5]).encode() for i in range(len(words) - 4)))
    assert shingles("The  Quick, brown FOX; jumps over the lazy dog!", plain) == expected
    # the default short-text rule: 6-49 words -> words + word bigrams; <= 5 words -> the whole text; >= 50 -> 5-grams
    bigrams = [f"{a} {b}" for a, b in zip(words, words[1:])]
    assert shingles("The  Quick, brown FOX; jumps over the lazy dog!", S) == [
        w.encode() for w in dict.fromkeys(words + bigrams)]
    assert shingles("two words", S) == shingles("two words", plain) == [b"two words"]
    long = " ".join(f"w{i}" for i in range(50))
    assert shingles(long, S) == shingles(long, plain) and len(shingles(long, S)) == 46
    assert shingles(" \n\t", S) == []


def test_exact_copies_removed_and_unrelated_never_merged():
    rng = random.Random(1)
    base = [_text(rng) for _ in range(120)]
    copies = [base[i] for i in rng.sample(range(120), 15)]
    docs = _frame(base + copies)
    res = dedup(docs, S)
    _check_accounting(docs, res)
    copy_ids = set(docs["docid"][120:].to_list())
    assert set(res.removed["removed_docid"].to_list()) == copy_ids  # every copy, nothing unrelated
    assert (res.removed["stage"] == "exact").all()
    assert (res.removed["verified_jaccard"] == 1.0).all()
    assert res.stats["n_removed"] == 15 and res.check_removal_rate(S)[0]


def test_unrelated_pair_not_merged_even_without_verification():
    rng = random.Random(2)
    a, b = _text(rng), _text(rng)
    assert _jaccard(a, b) < 0.05
    for settings in (S, MinHashSettings(verify=False)):
        res = dedup(_frame([a, b]), settings)
        assert res.removed.is_empty() and res.stats["n_candidate_pairs"] == 0


def test_small_edits_caught_and_lowest_docid_kept():
    rng = random.Random(3)
    base = [_text(rng, 300) for _ in range(30)]
    edited = [_edit(rng, t, 3) for t in base]  # 3 words of 300 -> J ~ 0.9
    docs = pl.DataFrame({"docid": [f"a{i:03d}" for i in range(30)] + [f"b{i:03d}" for i in range(30)],
                         "text": base + edited, "shard": "s1"})
    assert all(0.85 < _jaccard(x, y) < 0.97 for x, y in zip(base, edited))
    res = dedup(docs, S)
    _check_accounting(docs, res)
    assert sorted(res.removed["removed_docid"].to_list()) == [f"b{i:03d}" for i in range(30)]
    assert sorted(res.removed["kept_docid"].to_list()) == [f"a{i:03d}" for i in range(30)]
    assert (res.removed["stage"] == "near").all() and (res.removed["rule"] == "lowest_docid").all()
    assert (res.removed["verified_jaccard"] > 0.85).all() and (res.removed["cluster_size"] == 2).all()


def test_verification_rejects_band_false_positives():
    rng = random.Random(4)
    base = [_text(rng, 300) for _ in range(40)]
    far = [_edit(rng, t, 25) for t in base]  # J ~ 0.55-0.65: often a band candidate, never >= 0.8
    docs = _frame(base + far)
    res = dedup(docs, S)
    assert res.removed.is_empty()
    assert res.stats["n_rejected_pairs"] == res.stats["n_candidate_pairs"] > 0
    loose = dedup(docs, MinHashSettings(verify=False))  # classic LSH: every collision is a duplicate
    assert len(loose.removed) == loose.stats["n_candidate_pairs"] and loose.removed["verified_jaccard"].is_null().all()


def test_chain_forms_one_cluster_with_one_keeper():
    rng = random.Random(5)
    a = _text(rng, 400)
    b = _edit(rng, a, 4)
    c = _edit(rng, b, 4)
    docs = _frame([c, a, b])
    res = dedup(docs, S)
    _check_accounting(docs, res)
    assert res.kept_docids == ["d0000"] and res.removed["cluster_size"].to_list() == [3, 3]
    assert res.removed["cluster_id"].n_unique() == 1


def test_best_signal_keep_rule():
    rng = random.Random(6)
    t = _text(rng)
    docs = _frame([t, _edit(rng, t, 2), _edit(rng, t, 2), _text(rng)])
    settings = MinHashSettings(keep_rule="best_signal")
    res = dedup(docs, settings, signal={"d0000": 0.1, "d0001": 0.9, "d0002": 0.5, "d0003": 0.0})
    assert set(res.kept_docids) == {"d0001", "d0003"}
    assert set(res.removed["kept_docid"].to_list()) == {"d0001"} and (res.removed["rule"] == "best_signal").all()
    ties = dedup(docs, settings, signal=pl.DataFrame({"docid": ["d0001", "d0002"], "score": [0.5, 0.5]}))
    assert set(ties.kept_docids) == {"d0001", "d0003"}  # tie -> lowest docid; unscored d0000 ranks last
    with pytest.raises(NagInputError, match="signal"):
        dedup(docs, settings)


def test_incremental_never_redecides_kept_docs():
    rng = random.Random(7)
    shard1 = [_text(rng) for _ in range(20)]
    s1 = _frame(shard1, "s1", "z")  # high docids: lowest_docid would prefer shard-2 ids
    r1 = dedup_incremental(s1, None, S)
    assert len(r1.kept_docids) == 20 and len(r1.kept_signatures) == 20
    copy_of_3, edit_of_5 = shard1[3], _edit(rng, shard1[5], 2)
    new_a = _text(rng)
    new_a_edit = _edit(rng, new_a, 2)
    s2 = _frame([copy_of_3, edit_of_5, new_a, new_a_edit, _text(rng)], "s2", "a")
    r2 = dedup_incremental(s2, r1.kept_signatures, S)
    _check_accounting(s2, r2, prior=set(r1.kept_docids))
    removed = dict(zip(r2.removed["removed_docid"].to_list(), r2.removed["kept_docid"].to_list()))
    assert removed == {"a0000": "z0003", "a0001": "z0005", "a0003": "a0002"}
    rules = dict(zip(r2.removed["removed_docid"].to_list(), r2.removed["rule"].to_list()))
    assert rules["a0000"] == rules["a0001"] == "already_kept" and rules["a0003"] == "lowest_docid"
    # without texts the shard-1 side is judged on the signature estimate; with texts, exactly
    assert r2.removed.filter(pl.col("kept_docid") == "z0003")["verified_jaccard"].is_null().all()
    with_text = r1.kept_signatures.join(s1.select("docid", "text"), on="docid")
    r2t = dedup_incremental(s2, with_text, S)
    assert r2t.removed.filter(pl.col("kept_docid") == "z0003")["verified_jaccard"].to_list() == [1.0]
    assert r2t.removed["removed_docid"].to_list() == r2.removed["removed_docid"].to_list()
    assert set(r2.kept_signatures["docid"].to_list()) == {"a0002", "a0004"}
    # the stored state accumulates; shard 3 sees both earlier shards
    state = pl.concat([r1.kept_signatures, r2.kept_signatures])
    r3 = dedup_incremental(_frame([new_a], "s3", "b"), state, S)
    assert r3.removed["kept_docid"].to_list() == ["a0002"] and r3.kept_docids == []
    with pytest.raises(NagInputError, match="settings_hash"):
        dedup_incremental(s2, r1.kept_signatures, MinHashSettings(seed=2))


def test_incremental_with_a_candidate_lookup_equals_the_full_prior():
    """A lookup that returns only earlier rows sharing a bucket gives the full prior's answer."""
    rng = random.Random(10)
    s1 = _frame([_text(rng) for _ in range(30)], "s1", "z")
    r1 = dedup_incremental(s1, None, S)
    s2 = _frame([s1["text"][3], _edit(rng, s1["text"][5], 2), _text(rng), _text(rng)], "s2", "a")
    seen = {}

    def lookup(bands: pl.DataFrame) -> pl.DataFrame:
        seen["bands"] = bands
        stored = band_rows(r1.kept_signatures, S)
        hits = stored.join(bands.select("band", "bucket"), on=["band", "bucket"], how="semi")["docid"].unique()
        return r1.kept_signatures.filter(pl.col("docid").is_in(hits.implode()))

    full, bounded = dedup_incremental(s2, r1.kept_signatures, S), dedup_incremental(s2, lookup, S)
    assert bounded.removed.to_dicts() == full.removed.to_dicts() and bounded.kept_docids == full.kept_docids
    assert seen["bands"].height == 4 * S.bands and bounded.stats["n_prior_kept"] == 2 < full.stats["n_prior_kept"]


def test_decontamination_records_matched_example():
    rng = random.Random(8)
    questions = [_text(rng, 60) for _ in range(5)]
    targets = pl.DataFrame({"example_id": [f"q{i}" for i in range(5)], "target": "gsm8k", "text": questions})
    pool = [_text(rng) for _ in range(30)] + [questions[2], _edit(rng, questions[4], 1)]
    audit = decontaminate(_frame(pool), targets, S)
    assert audit.schema == pl.Schema(AUDIT_SCHEMA)
    got = {r["removed_docid"]: r for r in audit.iter_rows(named=True)}
    assert set(got) == {"d0030", "d0031"}
    assert got["d0030"]["matched_example"] == "q2" and got["d0031"]["matched_example"] == "q4"
    assert all(r["stage"] == "contamination" and r["kept_docid"] is None and r["matched_target"] == "gsm8k"
               for r in got.values())


def test_bands_rows_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"'bands'.*'rows'.*'num_perm'.*16 \* 8 = 128 != 120"):
        MinHashSettings(bands=16, rows=8, num_perm=120)
    with pytest.raises(ValueError, match="shingle_type"):
        MinHashSettings(shingle_type="token")
    with pytest.raises(ValueError, match="verify_threshold"):
        MinHashSettings(verify_threshold=0)
    with pytest.raises(ValueError, match="short_text_words.*non-negative"):
        MinHashSettings(short_text_words=-1)


def test_settings_name_threshold_and_s_curve():
    assert S.name == "w5u50_b20r6_s1" and MinHashSettings(short_text_words=0).name == "w5_b20r6_s1"
    assert S.settings_hash != MinHashSettings(short_text_words=100).settings_hash
    assert abs(S.threshold - (1 / 20) ** (1 / 6)) < 1e-12
    assert collision_probability(0.8, S.bands, S.rows) > 0.99  # defaults catch J >= 0.8
    curve = s_curve(S, 11)
    assert curve[0] == (0.0, 0.0) and curve[-1][1] == 1.0
    assert all(p1 <= p2 for (_, p1), (_, p2) in zip(curve, curve[1:]))
    assert "datasketch==2" in S.hashing_scheme and S.settings_hash != MinHashSettings(seed=2).settings_hash
    assert S.settings_hash == MinHashSettings(max_removal_rate=0.1).settings_hash


def test_removal_rate_check_fails_when_too_much_is_removed():
    rng = random.Random(9)
    t = _text(rng)
    res = dedup(_frame([t] * 4 + [_text(rng)]), MinHashSettings(max_removal_rate=0.5))
    ok, message = res.check_removal_rate(MinHashSettings(max_removal_rate=0.5))
    assert not ok and "3 of 5" in message
