"""The deduplicated-pool step on its own: incremental shards, keep rules and the settings record."""

import json

import polars as pl
import pytest

from nag_core import pool_steps
from nag_core.errors import NagInputError
from nag_core.freshness import State
from nag_core.home import Home
from nag_core.settings import load_settings
from nag_core.warehouse import Warehouse

BASE = ("The committee met on Tuesday to review the annual budget for the city library, and after a long debate "
        "it approved new funding for children's books and evening classes. Members also discussed the leaking roof "
        "of the north reading room, the cost of extending opening hours into the weekend, a proposal to lend tools "
        "and musical instruments, and a request from the local school for a quiet study space during exams. The "
        "chair asked officers to report back in March with three costed options and a timetable for the repairs.")


def build(home, shard, rows):
    (home / "pool").mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.lit(10).alias("token_num")).write_parquet(home / "pool" / f"{shard}.parquet")
    state = State(Home(home))
    pool_steps.raw_pool(state, shard, "test", log=lambda m: None)
    return pool_steps.dedup_pool(state, shard, "test", log=lambda m: None)


def test_best_signal_keeps_the_highest_quality_copy_and_records_settings(tmp_path):
    (tmp_path / "nag.yaml").write_text("dedup:\n  signal_column: quality\n  near:\n    keep_rule: best_signal\n")
    result = build(tmp_path, "s1", {"docid": ["a", "b", "c"], "quality": [0.2, 0.9, 0.5],
                                    "text": [BASE, BASE.replace("Tuesday", "Wednesday"), "An unrelated note about football."]})
    wh = Warehouse(tmp_path)
    audit = wh.read("dedup_removed", ["s1"])
    assert audit.select("removed_docid", "kept_docid", "stage", "rule").rows() == [("a", "b", "near", "best_signal")]
    assert audit["verified_jaccard"][0] >= 0.8
    assert sorted(wh.read("pool_kept", ["s1"])["docid"]) == ["b", "c"]
    settings = wh.read("dedup_settings", [audit["settings_hash"][0]]).row(0, named=True)
    assert json.loads(settings["near"])["keep_rule"] == "best_signal" and settings["signal_column"] == "quality"
    assert result.metadata["near_parameters"]["bands"] * result.metadata["near_parameters"]["rows"] == 120


def test_later_shard_never_redecides_kept_documents(tmp_path):
    build(tmp_path, "s1", {"docid": ["z9"], "text": [BASE]})
    build(tmp_path, "s2", {"docid": ["a1", "a2"], "text": [BASE.replace("Tuesday", "Monday"), "Something else entirely here."]})
    wh = Warehouse(tmp_path)
    assert wh.read("pool_kept", ["s1"])["docid"].to_list() == ["z9"]  # z9 stays although a1 < z9
    audit = wh.read("dedup_removed", ["s2"])
    assert audit.select("removed_docid", "kept_docid", "rule").rows() == [("a1", "z9", "already_kept")]


def test_best_signal_without_a_column_is_a_settings_error(tmp_path):
    (tmp_path / "nag.yaml").write_text("dedup:\n  near:\n    keep_rule: best_signal\n")
    with pytest.raises(NagInputError, match="signal_column"):
        load_settings(tmp_path / "nag.yaml")
