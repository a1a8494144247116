"""Reading pool shards, targets and settings: good input read right, bad input named and explained."""

import gzip
import json

import polars as pl
import pytest

from nag_core.documents import drop_foreign_docids, read_shard
from nag_core.errors import NagInputError
from nag_core.home import Home
from nag_core.settings import Settings, load_settings
from nag_core.targets import read_target


def count_words(texts):
    return [len(t.split()) for t in texts]


def write_jsonl(path, rows, raw_lines=()):
    with open(path, "wb") as fh:
        for row in rows:
            fh.write((json.dumps(row) + "\n").encode())
        for line in raw_lines:
            fh.write(line + b"\n")


def test_shard_quarantines_bad_rows_with_reasons(tmp_path):
    path = tmp_path / "s.jsonl"
    write_jsonl(path, [
        {"docid": "a", "text": "alpha beta", "lang": "en"},
        {"docid": "b", "text": "   "},
        {"docid": "a", "text": "repeat of a"},
        {"docid": "c", "text": 42},
        {"docid": "d", "text": "gamma", "token_num": -3},
        {"text": "no id here"},
        {"text": "no id here"},
    ], raw_lines=[b'{"docid": "e", "text": "caf\xe9 bad bytes"}'])
    shard = read_shard(path, "s", count_words)
    docs, q = shard.documents, shard.quarantine
    assert docs["docid"].to_list()[0] == "a"
    assert docs.height == 3 and q.height == 5
    reasons = dict(zip(q["row_index"].to_list(), q["reason"].to_list()))
    assert "empty" in reasons[1]
    assert "not unique" in reasons[2] and "row 0" in reasons[2]
    assert "not a string" in reasons[3]
    assert "token_num" in reasons[4]
    assert "UTF-8" in reasons[7]
    derived = docs["docid"].to_list()[1:]
    assert derived[0].startswith("h") and derived[1] == derived[0] + "-2"  # stable, content-derived ids
    assert docs["token_num"].to_list() == [2, 3, 3]
    assert docs["lang"].to_list()[0] == "en"  # payload travels


def test_shard_reads_reference_doc_column_and_keeps_given_token_counts(tmp_path):
    path = tmp_path / "ref.parquet"
    pl.DataFrame({"docid": ["x", "y"], "doc": ["one two", "three"], "token_num": [7, 9], "dataset": ["d", "d"]}).write_parquet(path)
    shard = read_shard(path, "ref", None)
    assert shard.text_column == "doc"
    assert shard.documents["token_num"].to_list() == [7, 9]


def test_shard_without_text_column_names_the_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    pl.DataFrame({"body": ["x"]}).write_parquet(path)
    with pytest.raises(NagInputError, match=r"bad\.parquet.*no text column.*body"):
        read_shard(path, "bad", None)


def test_broken_json_line_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(NagInputError, match="broken.jsonl: line 2"):
        read_shard(path, "broken", count_words)


def test_docid_owned_by_another_shard_is_quarantined(tmp_path):
    path = tmp_path / "s2.jsonl"
    write_jsonl(path, [{"docid": "a", "text": "x"}, {"docid": "b", "text": "y"}])
    shard = drop_foreign_docids(read_shard(path, "s2", count_words), {"a": "s1"})
    assert shard.documents["docid"].to_list() == ["b"]
    assert "already used in shard 's1'" in shard.quarantine["reason"][0]


def test_shard_names_must_be_partition_safe(tmp_path):
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "bad name.jsonl").write_text("")
    with pytest.raises(NagInputError, match="not usable as a partition key"):
        Home(tmp_path).shard_files()


def test_target_template_text_column_and_string_fallback(tmp_path):
    t1 = tmp_path / "t1"
    t1.mkdir()
    write_jsonl(t1 / "a.jsonl", [{"question": "2+2?", "answer": "4"}])
    (t1 / "target.yaml").write_text('template: "Q: {question} A: {answer}"\n')
    assert read_target(t1, "t1")["text"].to_list() == ["Q: 2+2? A: 4"]

    t2 = tmp_path / "t2"
    t2.mkdir()
    (t2 / "bbh.json").write_text(json.dumps({"examples": [{"input": "in", "target": "out", "n": 3}]}))
    assert read_target(t2, "t2")["text"].to_list() == ["in out"]

    t3 = tmp_path / "t3"
    t3.mkdir()
    with gzip.open(t3 / "h.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"text": "given text", "other": "ignored"}) + "\n")
    assert read_target(t3, "t3")["text"].to_list() == ["given text"]


def test_target_template_with_unknown_field_says_which(tmp_path):
    t = tmp_path / "t"
    t.mkdir()
    write_jsonl(t / "a.jsonl", [{"question": "q"}])
    (t / "target.yaml").write_text('template: "{question} {solution}"\n')
    with pytest.raises(NagInputError, match=r"'solution'.*fields: \['question'\]"):
        read_target(t, "t")


def test_settings_defaults_are_the_papers(tmp_path):
    s = load_settings(tmp_path / "absent.yaml")
    assert (s.top_k, s.max_length, s.neuron_types, s.budget_fraction) == (20, 120, ("fwd_up",), 0.2)
    assert s.profile == "frequency"


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("top_k: 20\nbudget: 0.3\n", r"unknown setting\(s\) \['budget'\]"),
    ("budget_fraction: 1.5\n", "budget_fraction"),
    ("profile: contrast\n", r"nag.yaml: setting 'profile' must be one of \['frequency', 'contrastive'\]"),
    ("profile: contrastive\ncontrast_smoothing: 0\n", "'contrast_smoothing' must be a positive number, got 0"),
])
def test_settings_errors_name_the_setting(tmp_path, yaml_text, message):
    path = tmp_path / "nag.yaml"
    path.write_text(yaml_text)
    with pytest.raises(NagInputError, match=message):
        load_settings(path)


def test_stage_hashes_change_only_with_the_settings_they_read():
    base, budget, k = Settings(), Settings(budget_fraction=0.3), Settings(top_k=10)
    assert base.hash_for("activations") == budget.hash_for("activations")
    assert base.hash_for("selection") != budget.hash_for("selection")
    assert base.hash_for("activations") != k.hash_for("activations")
    assert base.hash_for("dedup_pool") == k.hash_for("dedup_pool")
    contrastive = Settings(profile="contrastive")
    # every NAG signal is stored whatever the profile: the profile only decides what subsets rank by
    assert base.hash_for("scores") == contrastive.hash_for("scores")
    assert base.hash_for("selection") != contrastive.hash_for("selection")
    assert base.hash_for("scores") != Settings(score_layers="last:2").hash_for("scores")
    assert base.hash_for("neuron_graph") == contrastive.hash_for("neuron_graph")
