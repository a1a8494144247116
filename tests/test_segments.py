"""Compacted lookup segments: the same dedup decisions as reading every shard's file, with few files opened."""

from __future__ import annotations

import random

import polars as pl
import pytest

from nag_core import pool_steps, segments
from nag_core.freshness import State
from nag_core.home import Home
from nag_core.warehouse import Warehouse

_VOCAB = [f"w{i}" for i in range(3000)]


def _shard_rows(s: int, rng: random.Random, earlier: list[str]) -> dict[str, list[str]]:
    """Six fresh texts, plus an exact and a near copy of earlier shards' texts, and one docid of shard 0."""
    fresh = [" ".join(rng.choice(_VOCAB) for _ in range(60)) for _ in range(6)]
    texts, docids = list(fresh), [f"s{s:02d}-{i}" for i in range(6)]
    if earlier:
        texts.append(rng.choice(earlier).upper())  # exact after normalisation
        words = rng.choice(earlier).split()
        words[rng.randrange(len(words))] = "edited"
        texts.append(" ".join(words))  # one word of 60 changed
        docids += [f"s{s:02d}-exact", f"s{s:02d}-near"]
    if s == 7:
        texts.append("a document whose docid shard 0 already holds")
        docids.append("s00-0")
    return {"docid": docids, "text": texts}


def _process(home, shard: str, rows: dict) -> None:
    (home / "pool").mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.lit(60).alias("token_num")).write_parquet(home / "pool" / f"{shard}.parquet")
    state = State(Home(home))
    pool_steps.raw_pool(state, shard, "test", log=lambda m: None)
    pool_steps.dedup_pool(state, shard, "test", log=lambda m: None)


def _outcome(home) -> dict:
    wh = Warehouse(home)
    return {"kept": sorted(wh.read("pool_kept")["docid"].to_list()),
            "removed": wh.read("dedup_removed").select("removed_docid", "kept_docid", "stage").sort("removed_docid").rows(),
            "quarantine": wh.read("quarantine").select("docid", "reason").sort("docid").rows()}


def _build(home, n: int, monkeypatch, compact_at: int, fanout: int) -> dict[str, dict]:
    monkeypatch.setattr(segments, "COMPACT_AT", compact_at)
    monkeypatch.setattr(segments, "FANOUT", fanout)
    rng, earlier, shards = random.Random(5), [], {}
    for s in range(n):
        rows = _shard_rows(s, rng, earlier)
        earlier += rows["text"][:6]
        shards[f"s{s:02d}"] = rows
        _process(home, f"s{s:02d}", rows)
    return shards


def test_segments_give_the_decisions_of_reading_every_file(tmp_path, monkeypatch):
    _build(tmp_path / "plain", 14, monkeypatch, compact_at=10**9, fanout=2)
    _build(tmp_path / "seg", 14, monkeypatch, compact_at=2, fanout=2)
    plain, seg = _outcome(tmp_path / "plain"), _outcome(tmp_path / "seg")
    assert seg == plain
    # the case mix is real: exact and near removals across shards, and a docid another shard holds
    assert {stage for _, _, stage in plain["removed"]} == {"exact", "near"}
    assert len(plain["removed"]) == 2 * 13
    assert [d for d, _ in plain["quarantine"]] == ["s00-0"]

    wh = Warehouse(tmp_path / "seg")
    manifest, _ = segments._manifest(wh, "dedup_bands")
    assert max(s["level"] for s in manifest) >= 2  # merged twice over
    src = segments.sources(wh, "dedup_bands", wh.partitions("dedup_bands"))
    assert len(src.files) < 2 and len(src.segments) <= 2 * 3  # fewer than COMPACT_AT loose files, FANOUT per level
    assert sorted(p for s in src.segments for p in s.partitions) + [f.stem for f in src.files] == wh.partitions("dedup_bands")
    assert not (tmp_path / "plain" / "tables" / "dedup_bands" / "_segments").exists()


def test_a_rewritten_or_deleted_shard_is_never_read_from_a_stale_segment(tmp_path, monkeypatch):
    home = tmp_path / "home"
    shards = _build(home, 6, monkeypatch, compact_at=2, fanout=2)
    wh = Warehouse(home)
    in_segment = {p for s in segments.sources(wh, "pool_kept", wh.partitions("pool_kept"), compact=False).segments
                  for p in s.partitions}
    assert {"s01", "s02"} <= in_segment

    # s01 is rewritten without its first text; s02 is deleted: their segment rows are stale now
    gone = shards["s01"]["text"][0]
    rewritten = {k: v[1:] for k, v in shards["s01"].items()}
    _process(home, "s01", rewritten)
    for table in ("documents", "pool_kept", "dedup_bands", "dedup_signatures"):
        wh.delete(table, "s02")
    (home / "pool" / "s02.parquet").unlink()

    _process(home, "s09", {"docid": ["new-copy-of-s01", "new-copy-of-s02", "new-docid-s02"],
                           "text": [gone, shards["s02"]["text"][0], "a text of its own, unlike any other"]})
    removed = wh.read("dedup_removed", ["s09"])
    assert removed.is_empty(), removed  # neither copy is removed in favour of a document that is no longer kept
    assert sorted(wh.read("pool_kept", ["s09"])["docid"].to_list()) == ["new-copy-of-s01", "new-copy-of-s02", "new-docid-s02"]


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(KeyError, match="no lookup segments"):
        segments.sources(Warehouse(tmp_path), "signals", [])


def test_gc_drops_segments_that_copied_a_removed_shard(tmp_path, monkeypatch):
    from nag_core.gc import collect

    home = tmp_path / "home"
    _build(home, 5, monkeypatch, compact_at=2, fanout=2)
    wh = Warehouse(home)
    assert list(segments.segment_dir(wh, "pool_kept").glob("L*.parquet"))
    (home / "pool" / "s01.parquet").unlink()
    collect(Home(home))
    assert "s01" not in wh.partitions("pool_kept")
    assert not list(segments.segment_dir(wh, "pool_kept").glob("L*.parquet"))  # no copy of s01's rows is left
    src = segments.sources(wh, "pool_kept", wh.partitions("pool_kept"))  # rebuilt from the files on the next lookup
    assert sorted(p for s in src.segments for p in s.partitions) + [f.stem for f in src.files] == ["s00", "s02", "s03", "s04"]


def test_segments_on_an_object_store_give_the_local_decisions(tmp_path, monkeypatch):
    """Compaction, manifests and lookups through fsspec's in-memory store (no rename, no folders)."""
    import uuid

    import fsspec

    bucket = f"nag-seg-{uuid.uuid4().hex[:12]}"
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "nag.yaml").write_text(f"storage:\n  url: memory://{bucket}\n", encoding="utf-8")
    try:
        _build(tmp_path / "local", 9, monkeypatch, compact_at=2, fanout=2)
        _build(remote, 9, monkeypatch, compact_at=2, fanout=2)
        assert _outcome(remote) == _outcome(tmp_path / "local")
        wh = Warehouse(remote)
        manifest, _ = segments._manifest(wh, "dedup_bands")
        assert max(s["level"] for s in manifest) >= 2
        live = {s["file"] for s in manifest}
        assert {p.name for p in segments.segment_dir(wh, "dedup_bands").glob("L*.parquet")} >= live
        assert not (remote / "tables").exists()
    finally:
        fsspec.filesystem("memory").rm(f"/{bucket}", recursive=True)
