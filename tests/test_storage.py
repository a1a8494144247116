"""Outputs on a non-local fsspec filesystem (``storage.url``), tested on the offline in-memory one.

The in-memory filesystem is a real fsspec implementation with object-store semantics
(no rename, whole-object puts, no real folders); each test uses its own bucket name.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import fsspec
import polars as pl
import pytest
from conftest import run_clean

from nag_core import storage
from nag_core.atomic import atomic_path, write_parquet
from nag_core.errors import NagInputError
from nag_core.home import Home
from nag_core.settings import load_settings
from nag_core.warehouse import Warehouse

MEMORY = fsspec.filesystem("memory")


@pytest.fixture
def bucket():
    name = f"nag-test-{uuid.uuid4().hex[:12]}"
    yield f"memory://{name}"
    if MEMORY.exists(f"/{name}"):
        MEMORY.rm(f"/{name}", recursive=True)


def remote_home(root: Path, url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nag.yaml").write_text(f"storage:\n  url: {url}\n", encoding="utf-8")
    return root


def test_plain_paths_stay_local_and_urls_use_their_filesystem(tmp_path, bucket):
    assert storage.location(str(tmp_path)) == tmp_path
    assert storage.location("out", base=tmp_path) == tmp_path / "out"  # relative to the data root, not the cwd
    assert Home(remote_home(tmp_path / "home", "../elsewhere")).outputs == tmp_path / "elsewhere"
    assert storage.location(f"file://{tmp_path}") == tmp_path
    remote = storage.location(bucket)
    assert not storage.is_local(remote) and storage.process_private(remote)
    assert str(remote / "tables") == f"{bucket}/tables"
    with pytest.raises(NagInputError, match=r"storage\.url.*'nosuchfs://x'.*fsspec"):
        storage.location("nosuchfs://x")
    if importlib.util.find_spec("s3fs") is None:  # without the s3 extra, an s3:// store is refused before any run
        with pytest.raises(NagInputError, match=r"'s3://bucket/nag'.*Install s3fs.*pip install 'nag-select\[s3\]'"):
            storage.location("s3://bucket/nag")


def test_storage_settings_are_checked(tmp_path):
    (tmp_path / "nag.yaml").write_text("storage:\n  url: ''\n", encoding="utf-8")
    with pytest.raises(NagInputError, match=r"nag\.yaml.*'storage\.url'"):
        load_settings(tmp_path / "nag.yaml")
    (tmp_path / "nag.yaml").write_text("storage:\n  bucket: b\n", encoding="utf-8")
    with pytest.raises(NagInputError, match=r"'storage' must be a mapping with keys from \['options', 'url'\]"):
        load_settings(tmp_path / "nag.yaml")
    (tmp_path / "nag.yaml").write_text("storage:\n  url: memory://x\n  options: [1]\n", encoding="utf-8")
    with pytest.raises(NagInputError, match=r"'storage\.options' must be a mapping"):
        load_settings(tmp_path / "nag.yaml")


def test_an_upload_is_whole_or_absent(bucket):
    path = storage.location(bucket) / "tables" / "t" / "p.parquet"
    write_parquet(pl.DataFrame({"a": [1, 2]}).to_arrow(), path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:  # a writer that dies half way
        tmp.write_bytes(b"PAR1 torn")
        raise RuntimeError("killed")
    assert storage.read_parquet(path)["a"].to_list() == [1, 2]  # the old object, untouched
    assert [p.name for p in path.parent.iterdir()] == ["p.parquet"]  # no temporary object on the store


def test_listing_stamps_change_when_an_object_is_replaced(bucket):
    folder = storage.location(bucket) / "tables" / "t"
    write_parquet(pl.DataFrame({"a": [1]}).to_arrow(), folder / "x.parquet")
    write_parquet(pl.DataFrame({"a": [1]}).to_arrow(), folder / ".hidden.parquet")
    first = storage.listing(folder)
    assert list(first) == [f"{bucket}/tables/t/x.parquet"]
    assert first[f"{bucket}/tables/t/x.parquet"] == storage.stamp(folder / "x.parquet")
    write_parquet(pl.DataFrame({"a": [1, 2, 3]}).to_arrow(), folder / "x.parquet")
    assert storage.listing(folder) != first
    both = storage.read_files(list(storage.listing(folder)), folder)
    assert both["a"].to_list() == [1, 2, 3] and set(both["_file"]) == {f"{bucket}/tables/t/x.parquet"}
    assert storage.listing(folder / "missing") == {} and storage.stamp(folder / "missing.parquet") is None


def test_warehouse_tables_live_on_the_store_and_query_through_duckdb(tmp_path, bucket):
    home = remote_home(tmp_path / "home", bucket)
    wh = Warehouse(home)
    wh.write("documents", "s1", pl.DataFrame({"docid": ["a", "b"], "shard": "s1", "text": ["x", "y"]}))
    wh.write("documents", "s2", pl.DataFrame({"docid": ["c"], "shard": "s2", "text": ["z"]}))
    wh.refresh_views()
    assert wh.query("SELECT shard, count(*) AS n FROM documents GROUP BY ALL ORDER BY ALL").rows() == [("s1", 2), ("s2", 1)]
    assert wh.partitions("documents") == ["s1", "s2"]
    assert wh.read("documents", ["s2"])["docid"].to_list() == ["c"]
    wh.delete("documents", "s2")
    assert wh.query("SELECT count(*) FROM documents").item() == 2  # the view's glob reads what is there now
    assert not (home / "tables").exists()  # only the catalogue is local
    assert (home / "warehouse.duckdb").exists()
    assert MEMORY.exists(f"/{bucket[len('memory://'):]}/tables/documents/s1.parquet")


def test_the_pipeline_on_an_object_store_selects_what_a_local_run_selects(built_demo, tmp_path, bucket):
    from nag_core.audit import explain
    from nag_core.demo_corpus import write_demo_home
    from nag_core.freshness import STAGES, State
    from nag_core.gc import collect, find_garbage

    local_home, _, _ = built_demo
    home = tmp_path / "home"
    write_demo_home(home, seed=0)
    settings = home / "nag.yaml"
    settings.write_text((settings.read_text() if settings.exists() else "") + f"\nstorage:\n  url: {bucket}\n")
    run_clean(home)

    local, remote = Home(local_home), Home(home)
    assert {p.name for p in home.iterdir()} <= {"nag.yaml", "pool", "targets", "recipes", "models", "cache",
                                                 "warehouse.duckdb", "warehouse.views"}
    assert [p.name for p in (home / "cache").iterdir()] == ["fingerprints.json"]  # input digests only
    names = sorted(p.name for p in remote.subsets_dir.iterdir())
    assert names == sorted(p.name for p in local.subsets_dir.iterdir()) and len(names) == 5
    for name in names:
        mine = storage.read_parquet(remote.subsets_dir / name, columns=["docid", "target", "rank"])
        theirs = pl.read_parquet(local.subsets_dir / name, columns=["docid", "target", "rank"])
        assert mine.sort("target", "rank").equals(theirs.sort("target", "rank")), name
    assert sorted(p.name for p in (remote.outputs / "cache" / "activations" / "minilm-l6").iterdir()) == \
        sorted(p.name for p in (local.outputs / "cache" / "activations" / "minilm-l6").iterdir())

    wh = Warehouse(home)
    assert wh.query("SELECT count(*) FROM pool_kept").item() == 450
    assert wh.query("SELECT count(*) FROM signals").item() == Warehouse(local_home).query("SELECT count(*) FROM signals").item()
    state = State(remote)  # the ledger is read back from the store: nothing is stale, a rerun does nothing
    assert {a: state.stale(a) for a in STAGES} == {a: [] for a in STAGES}
    assert run_clean(home).materialized == []
    assert not find_garbage(remote).all
    member = storage.read_parquet(remote.subsets_dir / "python_code__minilm-l6.parquet", columns=["docid"])["docid"][0]
    assert "selected" in explain(remote, member, "python_code__minilm-l6").text()

    shard = sorted(remote.shard_files())[0]
    remote.shard_files()[shard].unlink()  # a shard leaves the pool: gc removes its objects from the store
    removed = collect(remote)
    assert removed.files and all(not storage.is_local(p) for p in removed.files)
    assert shard not in wh.partitions("documents") and not remote.activation_cache_path("minilm-l6", shard).exists()
    assert wh.query_params("SELECT count(*) FROM documents WHERE shard = ?", [shard]).item() == 0


def test_parallel_runs_refuse_a_store_other_processes_cannot_see(tmp_path, bucket):
    import dagster as dg

    from nag_select.runner import run_stale

    home = remote_home(tmp_path / "home", bucket)
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    with pytest.raises(NagInputError, match=r"--parallel 2: storage\.url memory://.*private to one process"):
        run_stale(home, instance, device="cpu", parallel=2)
