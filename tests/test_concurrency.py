"""Concurrency: two `nag-select run` on one data root; partitions in parallel processes; a 200-tick sensor soak."""

import json
import random
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import tiny_home
from reliability_helpers import differences, leftovers, run_cli, small_home, snapshot

from nag_core.freshness import State
from nag_core.home import Home
from nag_core.step_result import record
from nag_select.runner import run_stale
from resources import NagHomeResource
from sensors import pool_sensor


@pytest.mark.slow
def test_two_runs_at_once_equal_a_serial_run(tmp_path):
    serial = small_home(tmp_path / "serial", shards=2, docs=40)
    both = tmp_path / "both"
    shutil.copytree(serial, both)
    assert not run_stale(serial, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None).failures

    procs = [run_cli(both), run_cli(both)]
    logs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(logs)
    assert not any("lock" in log.lower() and "error" in log.lower() for log in logs)
    assert leftovers(both) == []
    assert differences(snapshot(both), snapshot(serial)) == []


def _ctx(instance, home, cursor):
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources={"nag_home": NagHomeResource(path=str(home))})


def test_pool_sensor_soak_nothing_skipped_nothing_twice_cursor_survives(tmp_path):
    """200 ticks while shards arrive, change, are touched, revert and vanish.

    The daemon is played faithfully: a request whose run_key was seen before is dropped
    (Dagster's run-key dedup), a launched run finishes before the next tick (it records
    its fingerprint, as raw_pool does), and a "restart" is a fresh context given only the
    stored cursor string.
    """
    home = tiny_home(tmp_path / "home", ["a b"], {"t1": "x"})
    instance = dg.DagsterInstance.ephemeral()
    rng = random.Random(0)
    cursor, seen_keys, launched = None, set(), []
    serial = iter(range(10**6))  # each write is new content; a revert to old content is the case below
    versions_needing_a_run: list[tuple[str, str]] = []
    for tick in range(200):
        shards = sorted(p.stem for p in (home / "pool").glob("*.parquet"))
        action = rng.choice(["add", "change", "touch", "rewrite_same", "delete", "nothing"])
        name = rng.choice(shards) if shards and action != "add" else f"s{rng.randrange(2, 8)}"
        path = home / "pool" / f"{name}.parquet"
        if action in ("add", "change") or (action in ("touch", "rewrite_same") and not path.exists()):
            pl.DataFrame({"text": [f"{name} {next(serial)}"]}).write_parquet(path)
        elif action == "rewrite_same":  # same rows, new file: new mtime, same content digest
            pl.read_parquet(path).write_parquet(path)
        elif action == "touch":
            path.write_bytes(path.read_bytes())
        elif action == "delete" and len(shards) > 1:
            path.unlink()

        state = State(Home(home))
        built = {s: state.ledger.get(("raw_pool", s)) for s in state.shards}
        versions_needing_a_run += [(s, state.fingerprint("raw_pool", s)) for s in state.shards
                                   if built[s] is None or built[s]["fingerprint"] != state.fingerprint("raw_pool", s)]
        if tick % 50 == 49:
            cursor = json.loads(json.dumps(cursor))  # restart: only the stored string survives
        result = pool_sensor(_ctx(instance, home, cursor))
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        cursor = result.cursor
        for req in result.run_requests:
            if req.run_key in seen_keys:
                continue
            seen_keys.add(req.run_key)
            launched.append((req.partition_key, state.fingerprint("raw_pool", req.partition_key)))
            record(state, "raw_pool", req.partition_key, state.fingerprint("raw_pool", req.partition_key), "dv", f"run{tick}")
        # after the tick, every current shard is built from its current content: nothing skipped
        state = State(Home(home))
        assert state.stale("raw_pool") == [], f"tick {tick} ({action} {name}): skipped {state.stale('raw_pool')}"
    assert len(launched) == len(set(launched))  # nothing twice
    assert set(launched) == set(versions_needing_a_run)


def test_pool_sensor_reruns_a_shard_reverted_to_earlier_content(tmp_path):
    home = tiny_home(tmp_path / "home", ["a b"], {"t1": "x"})
    instance = dg.DagsterInstance.ephemeral()
    cursor, seen = None, set()
    for content in ("A", "B", "A"):
        pl.DataFrame({"text": [content]}).write_parquet(home / "pool" / "s1.parquet")
        result = pool_sensor(_ctx(instance, home, cursor))
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        cursor = result.cursor
        for req in result.run_requests:
            if req.run_key not in seen:  # Dagster launches a run key once per sensor
                seen.add(req.run_key)
                state = State(Home(home))
                record(state, "raw_pool", "s1", state.fingerprint("raw_pool", "s1"), "dv", "run")
    assert State(Home(home)).stale("raw_pool") == []


def _run_partitions(home: str, dagster_home: str, asset: str, keys: list[str]) -> list[str]:
    """One worker process: materialise its share of a stage's partitions, one Dagster run each."""
    import os

    os.environ["DAGSTER_HOME"] = dagster_home
    from nag_assets.definitions import build_definitions
    from nag_assets.graph_assets import JOB_OF
    from nag_select.runner import QUIET, _dagster_key

    job = build_definitions(Path(home), "cpu").resolve_job_def(JOB_OF[asset].name)
    failed = []
    with dg.DagsterInstance.get() as instance:
        for key in keys:
            result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(asset)], raise_on_error=False,
                                            run_config=QUIET, partition_key=_dagster_key(asset, key))
            if not result.success:
                failed.append(key)
    return failed


def save_tiny_bert(folder: Path, words: list[str]) -> None:
    """A seeded random 2-layer BERT whose word-level vocabulary covers the pool, saved as safetensors."""
    import torch
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=160)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)


@pytest.mark.slow
@pytest.mark.skip(reason="written but not yet run to completion on the shared 2-core machine; enable and check")
def test_partitions_in_parallel_processes_equal_a_serial_run(tmp_path):
    """4 shards x 2 models, every stage's partitions spread over 4 processes sharing one instance."""
    import multiprocessing as mp

    from nag_core.freshness import STAGES
    from nag_select.runner import register_partitions

    serial = small_home(tmp_path / "serial", shards=4, docs=20)
    words = sorted({w for f in (serial / "pool").glob("*.parquet") for t in pl.read_parquet(f)["text"] for w in t.split()})
    save_tiny_bert(serial / "models" / "tiny-bert", words)
    parallel = tmp_path / "parallel"
    shutil.copytree(serial, parallel)
    assert not run_stale(serial, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None).failures

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        register_partitions(instance, State(Home(parallel)))
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        for asset in STAGES:
            stale = State(Home(parallel)).stale(asset)
            shares = [stale[i::4] for i in range(4) if stale[i::4]]
            failed = pool.starmap(_run_partitions, [(str(parallel), str(dagster_home), asset, s) for s in shares])
            assert not any(failed), (asset, failed)
    from nag_core.warehouse import Warehouse

    Warehouse(parallel).refresh_views()
    assert leftovers(parallel) == []
    a, b = snapshot(parallel), snapshot(serial)
    assert a.keys() == b.keys() and any(k.startswith("subsets/") and "tiny-bert" in k for k in a)
    assert differences(a, b) == []
