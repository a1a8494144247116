"""The bad-input catalogue: each case gets a clear error naming the file, row or field, or a quarantine row.

Cases covered elsewhere: a JSONL line that is not JSON, no text column, duplicate docids
within and across shards, a template naming a missing field (tests/test_inputs.py); a
model folder without weights or tokenizer, or with pickle weights (tests/test_security.py);
no FFN projection (tests/test_extraction_causal.py); stale shards (tests/test_reliability_gc.py).
"""

import gzip
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nag_core.documents import MAX_DOCUMENT_BYTES, read_shard
from nag_core.errors import NagInputError
from nag_core.settings import load_settings
from nag_core.targets import read_target, target_files


def count_words(texts):
    return [len(t.split()) for t in texts]


def good_parquet(path, n=200):
    pl.DataFrame({"docid": [f"d{i}" for i in range(n)], "text": [f"document {i} " * 20 for i in range(n)]}).write_parquet(path)
    return path


def test_corrupt_parquet_is_named(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not really parquet at all PAR1")
    with pytest.raises(NagInputError, match=r"corrupt\.parquet: cannot read as Parquet.*Re-export"):
        read_shard(path, "corrupt", count_words)


def test_truncated_parquet_is_named(tmp_path):
    path = good_parquet(tmp_path / "cut.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NagInputError, match=r"cut\.parquet: cannot read as Parquet"):
        read_shard(path, "cut", count_words)


def test_truncated_gzip_jsonl_is_named(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(2000):
            fh.write(json.dumps({"text": f"line {i} " * 10}) + "\n")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NagInputError, match=r"cut\.jsonl\.gz: cannot be read"):
        read_shard(path, "cut", count_words)


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"text": "ok"}\n["a", "list"]\n')
    with pytest.raises(NagInputError, match=r"list\.jsonl: line 2 is a JSON list"):
        read_shard(path, "list", count_words)


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty or missing 'text'"), ("", "empty or missing 'text'"), (" \t\n ", "empty or missing 'text'"),
    (3.5, "'text' is a float, not a string"), (["a", "b"], "'text' is a list, not a string"),
    ({"k": "v"}, "'text' is a dict, not a string"), (True, "'text' is a bool, not a string"),
])
def test_bad_text_values_are_quarantined_with_a_reason(tmp_path, value, reason):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"docid": "ok", "text": "fine text"}) + "\n" + json.dumps({"docid": "bad", "text": value}) + "\n")
    shard = read_shard(path, "s", count_words)
    assert shard.documents["docid"].to_list() == ["ok"]
    assert shard.quarantine.select("row_index", "docid", "reason").rows() == [(1, "bad", reason)]


def test_non_utf8_text_in_parquet_is_quarantined(tmp_path):
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"docid": ["a", "b"], "text": pa.array([b"plain", b"caf\xe9 \xff"], pa.binary())}), path)
    shard = read_shard(path, "bin", count_words)
    assert shard.documents["docid"].to_list() == ["a"] and shard.documents["text"].to_list() == ["plain"]
    assert shard.quarantine.select("docid", "reason").rows() == [("b", "'text' is not valid UTF-8")]


def test_document_over_the_size_limit_is_quarantined_not_read(tmp_path):
    path = tmp_path / "big.jsonl"
    huge = "x" * (MAX_DOCUMENT_BYTES + 1)
    at_limit = "é" * (MAX_DOCUMENT_BYTES // 2)  # 2 bytes per character: exactly the limit
    with open(path, "w", encoding="utf-8") as fh:
        for docid, text in (("small", "a b"), ("huge", huge), ("limit", at_limit)):
            fh.write(json.dumps({"docid": docid, "text": text}, ensure_ascii=False) + "\n")
    counted = []
    shard = read_shard(path, "big", lambda texts: counted.extend(texts) or count_words(texts))
    assert shard.documents["docid"].to_list() == ["small", "limit"]
    (docid, reason, preview), = shard.quarantine.select("docid", "reason", "text_preview").rows()
    assert docid == "huge" and f"{MAX_DOCUMENT_BYTES + 1:,} bytes" in reason and "MAX_DOCUMENT_BYTES" in reason
    assert len(preview) == 120 and huge not in counted  # never tokenised, preview stays short


def test_empty_shard_reads_as_no_documents(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    shard = read_shard(path, "empty", count_words)
    assert shard.documents.height == 0 and shard.quarantine.height == 0


def test_empty_target_folder_is_named(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    with pytest.raises(NagInputError, match=r"/t: no example files"):
        target_files(folder)


def test_target_whose_examples_are_all_empty_is_named(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "  "}\n{"text": ""}\n')
    with pytest.raises(NagInputError, match="every example rendered to empty text"):
        read_target(folder, "t")


def test_corrupt_and_non_utf8_target_files_are_named(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(NagInputError, match=r"a\.parquet: cannot be read"):
        read_target(folder, "t")
    (folder / "a.parquet").unlink()
    (folder / "b.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(NagInputError, match=r"b\.jsonl: not valid UTF-8"):
        read_target(folder, "t")


def test_positional_template_is_named(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"question": "q"}\n')
    (folder / "target.yaml").write_text('template: "{0} {question}"\n')
    with pytest.raises(NagInputError, match=r"template '\{0\} \{question\}' cannot be filled.*named fields"):
        read_target(folder, "t")


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("top_k: 0\n", r"'top_k' must be a positive integer, got 0"),
    ("budget_fraction: 1.5\n", r"'budget_fraction' must be a number in \(0, 1\], got 1.5"),
    ("budget_fraction: 0\n", r"'budget_fraction' must be a number in \(0, 1\], got 0"),
    ("topk: 20\n", r"unknown setting\(s\) \['topk'\]"),
    ("top_k: [20\n", "not valid YAML"),
    ("- top_k\n", "expected a mapping"),
    ("dedup: {nearr: null}\n", "'dedup' must be a mapping with keys from"),
])
def test_bad_settings_name_the_file_and_setting(tmp_path, yaml_text, message):
    path = tmp_path / "nag.yaml"
    path.write_text(yaml_text)
    with pytest.raises(NagInputError, match=message) as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_a_budget_that_selects_nothing_names_the_setting_the_sizes_and_the_fix(tmp_path):
    """Not even the best-ranked document fits: the subset steps fail naming nag.yaml and budget_fraction,
    the budget and the documents' tokens, and the smallest fraction that works; that fraction then works."""
    import dagster as dg
    from conftest import tiny_home

    from nag_select.runner import run_stale

    home = tiny_home(tmp_path / "home", ["alpha beta gamma delta", "beta gamma", "epsilon zeta eta theta iota"],
                     {"t1": "alpha beta"})
    (home / "nag.yaml").write_text("budget_fraction: 0.1\n")  # 10% of 12 pool tokens: a budget of 1 token
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert sorted((asset, key) for asset, key, _ in report.failures) == [("mixture_subset", "minilm-l6"),
                                                                         ("selected_subset", "minilm-l6|t1")]
    for _, _, message in report.failures:
        assert f"{home / 'nag.yaml'}: budget_fraction 0.1 gives a budget of 1 tokens for target 't1' (of 12 pool " \
               "tokens), which selects nothing" in message
        assert "has 2 tokens and the smallest 2. Raise budget_fraction to at least 0.167" in message
    assert not list(home.glob("subsets/*"))  # no empty subset, no subset over its budget
    (home / "nag.yaml").write_text("budget_fraction: 0.167\n")
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert not report.failures and {a for a, _ in report.materialized} == {"selected_subset", "mixture_subset"}
    assert sorted(p.name for p in (home / "subsets").iterdir()) == ["mixture__minilm-l6.parquet", "t1__minilm-l6.parquet"]


def test_a_pool_with_no_document_to_score_names_pool_and_the_tables_to_check(tmp_path):
    from nag_core.freshness import State
    from nag_core.home import Home
    from nag_core.signal_steps import require_pool

    (tmp_path / "pool").mkdir()
    with pytest.raises(NagInputError) as err:
        require_pool(State(Home(tmp_path)), pl.DataFrame({"docid": []}))
    assert str(err.value).startswith(f"{tmp_path / 'pool'}: no document to score")
    assert "'quarantine' and 'dedup_removed' tables" in str(err.value) and "Add documents under pool/" in str(err.value)
