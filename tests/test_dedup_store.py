"""Cross-shard dedup through the warehouse (DuckDB joins on stored band keys and hashes)
gives exactly the answer of the old in-memory path, which read every earlier shard."""

from __future__ import annotations

import random

import polars as pl

from nag_core import pool_steps
from nag_core.exact_dedup import exact_dedup
from nag_core.freshness import State
from nag_core.home import Home
from nag_core.near_dedup import dedup_incremental
from nag_core.warehouse import Warehouse

_VOCAB = [f"w{i}" for i in range(5000)]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def _edit(rng: random.Random, text: str, k: int) -> str:
    words = text.split()
    for pos in rng.sample(range(len(words)), k):
        words[pos] = f"edit{pos}"
    return " ".join(words)


def _shards() -> dict[str, dict[str, list[str]]]:
    rng = random.Random(3)
    long_a, long_b, short_a, mid = _text(rng, 300), _text(rng, 200), _text(rng, 25), _text(rng, 40)
    s1 = [long_a, long_b, short_a] + [_text(rng, rng.choice([8, 40, 250])) for _ in range(30)]
    s2 = [_edit(rng, long_a, 3), long_b.upper(), mid] + [_text(rng, rng.choice([8, 40, 250])) for _ in range(30)]
    s3 = [long_b, _edit(rng, long_a, 2), _edit(rng, short_a, 1), s1[5], s1[5] + " !", _edit(rng, long_a, 60),
          _edit(rng, mid, 1)] + [_text(rng, rng.choice([8, 40, 250])) for _ in range(20)]
    return {name: {"docid": [f"{name}-{i:03d}" for i in range(len(t))], "text": t}
            for name, t in (("s1", s1), ("s2", s2), ("s3", s3))}


def _build(home, shard: str, rows: dict) -> dict:
    (home / "pool").mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.lit(10).alias("token_num")).write_parquet(home / "pool" / f"{shard}.parquet")
    state = State(Home(home))
    pool_steps.raw_pool(state, shard, "test", log=lambda m: None)
    return pool_steps.dedup_pool(state, shard, "test", log=lambda m: None).metadata


def _old_in_memory_answer(home, shard: str) -> tuple[list[str], pl.DataFrame]:
    """What dedup_pool computed before dedup_store: every earlier shard read whole."""
    state = State(Home(home))
    wh, near = Warehouse(home), state.settings.dedup.near
    settings_hash = state.settings.hash_for("dedup_pool")
    docs = wh.read("documents", [shard], columns=["docid", "text", "shard", "token_num", "text_hash"])
    kept, exact_audit = exact_dedup(docs, wh.read("pool_kept", columns=["norm_hash", "docid"], exclude=shard),
                                    settings_hash)
    prior = wh.read("dedup_signatures", exclude=shard).filter(pl.col("settings_hash") == near.settings_hash)
    prior = prior.join(wh.read("documents", columns=["docid", "text"], exclude=shard), on="docid", how="left")
    result = dedup_incremental(kept.select("docid", "text", "shard", "text_hash"), prior, near)
    audit = pl.concat([exact_audit, result.removed.with_columns(pl.lit(settings_hash).alias("settings_hash"))])
    return sorted(result.kept_docids), audit.sort("removed_docid")


def test_bounded_lookup_matches_the_in_memory_path(tmp_path):
    shards = _shards()
    _build(tmp_path, "s1", shards["s1"])
    _build(tmp_path, "s2", shards["s2"])
    wh = Warehouse(tmp_path)
    assert wh.partitions("dedup_bands") == ["s1", "s2"]
    # s3 is not yet in the warehouse: write its documents first, then compute the old answer
    (tmp_path / "pool").mkdir(exist_ok=True)
    pl.DataFrame(shards["s3"]).with_columns(pl.lit(10).alias("token_num")).write_parquet(tmp_path / "pool" / "s3.parquet")
    pool_steps.raw_pool(State(Home(tmp_path)), "s3", "test", log=lambda m: None)
    want_kept, want_audit = _old_in_memory_answer(tmp_path, "s3")
    meta = _build(tmp_path, "s3", shards["s3"])
    got_audit = wh.read("dedup_removed", ["s3"])
    assert sorted(wh.read("pool_kept", ["s3"])["docid"].to_list()) == want_kept
    assert got_audit.to_dicts() == want_audit.to_dicts()
    # the case mix really crosses shards: exact, near (long and short) and already-kept removals
    rules = dict(zip(got_audit["removed_docid"].to_list(), got_audit.select("stage", "rule", "kept_docid").rows()))
    assert rules["s3-000"] == ("exact", "lowest_docid", "s1-001") and rules["s3-003"][2] == "s1-005"
    assert rules["s3-001"] == ("near", "already_kept", "s1-000")
    assert rules["s3-002"] == ("near", "already_kept", "s1-002")  # 25-word text, one word changed
    assert rules["s3-006"] == ("near", "already_kept", "s2-002")
    assert "s3-005" not in rules  # 60 of 300 words changed: rejected by the exact check
    # only candidates were read, not all earlier kept documents
    earlier = wh.read("pool_kept", exclude="s3").height
    assert 0 < meta["prior_candidates_read"] < earlier / 4


def test_data_root_without_band_table_derives_bands_from_signatures(tmp_path):
    shards = _shards()
    for name in ("s1", "s2", "s3"):
        _build(tmp_path, name, shards[name])
    wh = Warehouse(tmp_path)
    want_kept, want_audit = sorted(wh.read("pool_kept", ["s3"])["docid"].to_list()), wh.read("dedup_removed", ["s3"])
    wh.delete("dedup_bands", "s1")
    wh.write("dedup_bands", "s2", wh.read("dedup_bands", ["s2"]).head(0))  # stale: older than ...
    wh.write("dedup_signatures", "s2", wh.read("dedup_signatures", ["s2"]))  # ... these signatures
    pool_steps.dedup_pool(State(Home(tmp_path)), "s3", "rerun", log=lambda m: None)
    assert sorted(wh.read("pool_kept", ["s3"])["docid"].to_list()) == want_kept
    assert wh.read("dedup_removed", ["s3"]).to_dicts() == want_audit.to_dicts()
    assert wh.partitions("dedup_bands") == ["s2", "s3"]  # nothing written into another shard's partition


def test_keeper_check_finds_keepers_in_other_shards_and_flags_lost_ones(tmp_path):
    from nag_core.checks import one_keeper_per_cluster

    shards = _shards()
    for name in ("s1", "s2", "s3"):
        _build(tmp_path, name, shards[name])
    state, wh = State(Home(tmp_path)), Warehouse(tmp_path)
    audit = wh.read("dedup_removed", ["s3"])
    assert {"s1-000", "s1-001", "s2-002"} <= set(audit["kept_docid"].to_list())  # keepers in two other shards
    ok, description, meta = one_keeper_per_cluster(state, "s3")
    assert ok and meta["missing_keepers"] == [], description

    wh.write("pool_kept", "s1", wh.read("pool_kept", ["s1"]).filter(pl.col("docid") != "s1-000"))  # a keeper vanishes
    ok, description, meta = one_keeper_per_cluster(state, "s3")
    assert not ok and meta["missing_keepers"] == ["s1-000"], description
