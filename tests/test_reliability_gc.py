"""`nag-select gc`: outputs of deleted, renamed or rewritten shards (and vanished targets) are removed."""

import os
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest
from conftest import tiny_home

from nag_core.atomic import _HOST, sweep_temp_files
from nag_core.errors import NagInputError
from nag_core.gc import collect, find_garbage
from nag_core.home import Home
from nag_core.warehouse import Warehouse
from nag_select.cli import main
from nag_select.runner import run_stale


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    d = tmp_path / "tables" / "signals"
    d.mkdir(parents=True)
    dead = d / f".t@m.parquet.{_HOST}.{dead_pid()}.abc123.tmp"
    live = d / f".t@m.parquet.{_HOST}.{os.getpid()}.def456.tmp"
    mine_elsewhere = d / ".t@m.parquet.otherhost.1.xyz.tmp"  # another host's writer: too young to judge
    user_file = d / "notes.tmp"
    for p in (dead, live, mine_elsewhere, user_file):
        p.write_bytes(b"partial")
    assert sweep_temp_files([tmp_path / "tables"]) == [dead]
    assert not dead.exists() and live.exists() and mine_elsewhere.exists() and user_file.exists()


def test_gc_refuses_an_empty_pool(tmp_path):
    (tmp_path / "pool").mkdir()
    with pytest.raises(NagInputError, match="no pool shards.*--allow-empty-pool"):
        find_garbage(Home(tmp_path))


@pytest.mark.slow
def test_renamed_rewritten_and_deleted_inputs_are_cleaned_and_unused(tmp_path, capsys):
    home = tiny_home(tmp_path / "home", [f"alpha doc {i} w{i % 5}" for i in range(8)], {"t1": "alpha w1", "t2": "doc w3"})
    pl.DataFrame({"docid": [f"b{i}" for i in range(6)], "text": [f"beta text {i}" for i in range(6)]}).write_parquet(
        home / "pool" / "s2.parquet")
    instance = dg.DagsterInstance.ephemeral()
    assert not run_stale(home, instance, device="cpu", log=lambda m: None).failures

    (home / "pool" / "s2.parquet").rename(home / "pool" / "s3.parquet")  # renamed
    pl.DataFrame({"docid": ["n0", "n1"], "text": ["new alpha w1", "new doc w3"]}).write_parquet(home / "pool" / "s1.parquet")
    for f in (home / "targets" / "t2").iterdir():  # target deleted
        f.unlink()
    (home / "targets" / "t2").rmdir()

    assert main(["gc", "--home", str(home), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    for rel in ("tables/documents/s2.parquet", "cache/activations/minilm-l6/s2.parquet", "tables/materializations/raw_pool@s2.parquet",
                "tables/target_examples/t2.parquet", "tables/signals/influence_scores@minilm-l6@t2.parquet",
                "tables/signals/dsir_scores@t2.parquet", "tables/subset_decisions/t2__minilm-l6.parquet",
                "tables/neuron_counts/minilm-l6@s2.parquet", "subsets/t2__minilm-l6.parquet",
                "manifests/t2__minilm-l6.json", "cache/target_activations/minilm-l6/t2.parquet"):
        assert f"would remove {rel}\n" in listed
        assert (home / rel).exists()  # a dry run removes nothing
    assert "s1.parquet" not in listed and "t1__minilm-l6" not in listed
    assert "influence_scores@minilm-l6@t1" not in listed and "dsir_scores@t1" not in listed  # live signals stay

    removed = collect(Home(home))
    assert {p.relative_to(home).as_posix() for p in removed.files} >= {"tables/documents/s2.parquet", "subsets/t2__minilm-l6.parquet"}
    assert not any("s2" in p.name or "t2" in p.name for p in (home / "tables").rglob("*.parquet"))

    assert not run_stale(home, instance, device="cpu", log=lambda m: None).failures
    wh = Warehouse(home)
    docs = wh.query("SELECT shard, docid FROM documents ORDER BY docid").rows()
    assert docs == [("s3", f"b{i}") for i in range(6)] + [("s1", "n0"), ("s1", "n1")]
    assert wh.query("SELECT count(*) FROM quarantine").item() == 0  # the renamed shard's docids clash with nothing
    assert set(wh.query("SELECT DISTINCT shard FROM signals").to_series()) == {"s1", "s3"}
    assert set(wh.query("SELECT DISTINCT shard FROM subset_members").to_series()) <= {"s1", "s3"}
    assert wh.query("SELECT subset FROM subsets ORDER BY subset").to_series().to_list() == ["mixture__minilm-l6", "t1__minilm-l6"]
    assert sorted(p.name for p in (home / "subsets").iterdir()) == ["mixture__minilm-l6.parquet", "t1__minilm-l6.parquet"]
    assert find_garbage(Home(home)).all == []
