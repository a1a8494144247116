"""Bookkeeping that keeps a run's fixed cost flat: remembered fingerprints, the ledger, batched shard runs, --only, bulk import."""

import json
import os
import time

import dagster as dg
import numpy as np
import polars as pl
import pytest

from nag_core import bookkeeping
from nag_core.bookkeeping import FingerprintStore, read_ledger
from nag_core.errors import NagInputError
from nag_core.freshness import State
from nag_core.hashing import file_digest
from nag_core.home import Home
from nag_core.step_result import record
from nag_core.targets import target_fingerprint
from nag_core.warehouse import Warehouse
from nag_select.cli import main
from nag_select.runner import batches, run_stale

LONG_AGO = 1_600_000_000  # an mtime far enough in the past to be remembered (see bookkeeping.RACY_SECONDS)


def forget_process_memory():
    """A new process: only the store file remains."""
    bookkeeping._digests.clear()
    bookkeeping._loaded_stores.clear()


def write_settled(path, data: bytes):
    path.write_bytes(data)
    os.utime(path, (LONG_AGO, LONG_AGO))


def test_fingerprint_is_reused_while_the_stat_is_unchanged_and_recomputed_after_a_change(tmp_path):
    shard = tmp_path / "pool" / "a.jsonl"
    shard.parent.mkdir()
    write_settled(shard, b'{"text": "one"}\n')
    store = FingerprintStore(tmp_path)
    assert store.file(shard) == file_digest(shard)
    store.save()
    stored = json.loads((tmp_path / "cache" / "fingerprints.json").read_text())
    entry = stored["files"][str(shard.absolute())]
    assert entry[:2] == [shard.stat().st_size, shard.stat().st_mtime_ns] and entry[-1].startswith(file_digest(shard))

    # Plant a digest for the same stamp: a new process must take it instead of hashing.
    entry[-1] = "0" * 64
    (tmp_path / "cache" / "fingerprints.json").write_text(json.dumps(stored))
    forget_process_memory()
    assert FingerprintStore(tmp_path).file(shard) == "0" * 16

    write_settled(shard, b'{"text": "two"}\n')  # same size, same mtime: only the ctime tells
    forget_process_memory()
    assert FingerprintStore(tmp_path).file(shard) == file_digest(shard) != "0" * 16


def test_a_file_written_just_now_is_hashed_but_not_remembered(tmp_path):
    shard = tmp_path / "a.jsonl"
    shard.write_text('{"text": "fresh"}\n')
    store = FingerprintStore(tmp_path)
    assert store.file(shard) == file_digest(shard)
    store.save()
    assert not (tmp_path / "cache" / "fingerprints.json").exists()


@pytest.mark.parametrize("garbage", ['{"version": 1, "files": {"x": [1, 2', "not json", '{"version": 1, "files": []}',
                                     '{"version": 1, "files": {"/p": [1, 2, 3, 4, 5]}}'])
def test_a_corrupt_store_falls_back_to_hashing_and_is_replaced(tmp_path, garbage):
    shard = tmp_path / "a.jsonl"
    write_settled(shard, b'{"text": "x"}\n')
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "fingerprints.json").write_text(garbage)
    forget_process_memory()
    store = FingerprintStore(tmp_path)
    assert store.file(shard) == file_digest(shard)
    store.save()
    forget_process_memory()
    assert json.loads((tmp_path / "cache" / "fingerprints.json").read_text())["files"][str(shard.absolute())][-1][:16] \
        == file_digest(shard)


def test_state_digests_equal_the_uncached_ones(tmp_path):
    (tmp_path / "pool").mkdir()
    write_settled(tmp_path / "pool" / "s1.jsonl", b'{"text": "a"}\n')
    folder = tmp_path / "targets" / "t1"
    folder.mkdir(parents=True)
    write_settled(folder / "a.jsonl", b'{"text": "q"}\n')
    write_settled(folder / "target.yaml", b"limit: 1\n")
    for _ in range(2):  # computed, then remembered
        state = State(Home(tmp_path))
        assert state.shards == {"s1": file_digest(tmp_path / "pool" / "s1.jsonl")}
        assert state.targets == {"t1": target_fingerprint(folder)}


def test_ledger_reads_see_every_rewrite(tmp_path):
    state = State(Home(tmp_path))
    record(state, "raw_pool", "s1", "fp1", "dv1", "r1")
    record(state, "raw_pool", "s2", "fp2", "dv2", "r1")
    assert {k: r["fingerprint"] for k, r in state.ledger.items()} == {("raw_pool", "s1"): "fp1", ("raw_pool", "s2"): "fp2"}
    record(state, "raw_pool", "s1", "fp3", "dv3", "r2")
    table = Warehouse(tmp_path).table_dir("materializations")
    assert read_ledger(table)[("raw_pool", "s1")]["fingerprint"] == "fp3"
    for f in table.glob("*.parquet"):  # settled files are remembered, and still re-read once rewritten
        os.utime(f, (LONG_AGO, LONG_AGO))
    assert read_ledger(table)[("raw_pool", "s2")]["data_version"] == "dv2"
    record(state, "raw_pool", "s2", "fp4", "dv4", "r3")
    assert state.ledger[("raw_pool", "s2")]["fingerprint"] == "fp4"
    Warehouse(tmp_path).delete("materializations", "raw_pool@s1")
    assert set(read_ledger(table)) == {("raw_pool", "s2")}


def test_batches_hold_only_keys_adjacent_in_partition_order():
    order = ["a", "b", "c", "d", "e", "f"]
    assert batches(["f", "a", "b", "d", "e"], order, size=10) == [["a", "b"], ["d", "e", "f"]]
    assert batches(order, order, size=4) == [["a", "b", "c", "d"], ["e", "f"]]


def small_home(root, shards: dict[str, list[str]]):
    (root / "pool").mkdir(parents=True)
    for name, texts in shards.items():
        pl.DataFrame({"docid": [f"{name}-{i}" for i in range(len(texts))], "text": texts,
                      "token_num": [len(t.split()) for t in texts]}).write_parquet(root / "pool" / f"{name}.parquet")
    (root / "targets" / "t1").mkdir(parents=True)
    (root / "targets" / "t1" / "a.jsonl").write_text(json.dumps({"text": "apples and pears"}) + "\n")
    return root


def texts(seed: int, n: int = 4) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{x}" for x in rng.integers(0, 10_000, 30)) for _ in range(n)]


def test_batched_run_records_every_partition_and_isolates_a_failing_shard(tmp_path):
    home = small_home(tmp_path / "home", {f"s{i}": texts(i) for i in range(5)})
    (home / "pool" / "s2.parquet").unlink()
    (home / "pool" / "s2.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    pl.DataFrame({"docid": ["s0-1", "own"], "text": ["a docid of s0 again", "its own"], "token_num": [5, 2]}
                 ).write_parquet(home / "pool" / "s5.parquet")
    instance = dg.DagsterInstance.ephemeral()
    logs = []
    report = run_stale(home, instance, device="cpu", log=logs.append, only=["raw_pool", "dedup_pool"])
    assert [(a, k) for a, k, _ in report.failures] == [("raw_pool", "s2")]
    assert "s2.jsonl: line 2 is not valid JSON" in report.failures[0][2]
    assert any("6 shards in one run" in m for m in logs) and any("retrying them one per run" in m for m in logs)
    assert {a for a, _ in report.materialized} == {"raw_pool", "dedup_pool"}
    for asset in ("raw_pool", "dedup_pool"):
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        assert sorted(r.asset_materialization.partition for r in records) == ["s0", "s1", "s3", "s4", "s5"]
    quarantine = Warehouse(home).read("quarantine", ["s5"])
    assert quarantine["docid"].to_list() == ["s0-1"] and quarantine["reason"].to_list() == ["docid already used in shard 's0'"]
    state = State(Home(home))
    assert state.stale("raw_pool") == ["s2"] and state.stale("dedup_pool") == []


def test_run_only_validates_stage_names(tmp_path):
    with pytest.raises(NagInputError, match="unknown stage.*raw_pol.*valid stages, in graph order: raw_pool"):
        run_stale(tmp_path, dg.DagsterInstance.ephemeral(), only=["raw_pol"])


def test_cli_run_only_then_import_many_shards_leaves_no_extraction(tmp_path, monkeypatch, capsys):
    home = small_home(tmp_path / "home", {"a": texts(1), "b": texts(2)})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("NAG_HOME", str(home))
    assert main(["run", "--home", str(home), "--only", "raw_pool,nope"]) == 2
    assert "valid stages, in graph order: raw_pool" in capsys.readouterr().err
    assert main(["run", "--home", str(home), "--only", "raw_pool,dedup_pool"]) == 0
    out, err = capsys.readouterr()
    assert "4 partitions materialised" in out and "Telemetry" not in out + err and "Warning" not in err
    assert (tmp_path / "dagster_home" / "dagster.yaml").read_text().endswith("enabled: false\n")

    features = tmp_path / "features"
    features.mkdir()
    rng = np.random.default_rng(0)
    for shard in ("a", "b"):
        with open(features / f"{shard}.jsonl", "w") as fh:
            for i in range(4):
                idx = rng.integers(0, 1536, 6 * 20).tolist()
                fh.write(json.dumps({"docid": f"{shard}-{i}", "fwd_up_feature": {"layer_topk_value_index": idx}}) + "\n")
    assert main(["import-features", "--home", str(home), "--model", "minilm-l6", "--dir", str(features)]) == 0
    assert "8 documents in 2 shard(s)" in capsys.readouterr().out
    assert State(Home(home)).stale("activation_cache") == []
    assert main(["import-features", "--home", str(home), "--model", "minilm-l6", "--shard", "a", "--in",
                 str(features / "a.jsonl"), "--shard", "b"]) == 2
    assert "got 2 --shard and 1 --in" in capsys.readouterr().err
    assert main(["import-features", "--home", str(home), "--model", "minilm-l6", "--shard", "zz", "--in",
                 str(features / "a.jsonl")]) == 2
    assert "no pool shard named zz" in capsys.readouterr().err
