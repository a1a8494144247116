"""Security: only safetensors, no remote code, hostile names refused, SQL paths escaped, UI on localhost, no secrets."""

import json
import re
from pathlib import Path

import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from nag_core.errors import NagInputError
from nag_core.home import Home
from nag_core.models import discover_models, load_model, model_ref
from nag_core.warehouse import Warehouse
from nag_select.cli import build_parser, ui_argv


def save_tiny_bert(folder: Path, safe: bool = True) -> Path:
    """A seeded 2-layer BERT with a word-level tokenizer, built here: nothing is downloaded."""
    torch.manual_seed(0)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(50)}}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=2, max_position_embeddings=64)
    model = BertModel(cfg)
    model.save_pretrained(folder)
    if not safe:  # a classic PyTorch pickle checkpoint instead (transformers 5 no longer writes one)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)
    return folder


def test_safetensors_checkpoint_loads(tmp_path):
    folder = save_tiny_bert(tmp_path / "tiny")
    model, tokenizer = load_model(model_ref("tiny", folder), "cpu")
    assert model.config.num_hidden_layers == 2 and not model.training
    assert tokenizer("w1 w2")["input_ids"] == [3, 4]


def test_pickle_checkpoint_is_refused_naming_the_file_and_the_fix(tmp_path):
    folder = save_tiny_bert(tmp_path / "tiny", safe=False)
    assert (folder / "pytorch_model.bin").exists()
    with pytest.raises(NagInputError, match=r"pytorch_model\.bin.*pickle.*safe_serialization=True"):
        model_ref("tiny", folder)


@pytest.mark.parametrize("name", ["weights.pt", "model.pth", "last.ckpt", "state.pkl"])
def test_any_pickle_file_beside_safetensors_is_refused(tmp_path, name):
    folder = save_tiny_bert(tmp_path / "tiny")
    (folder / name).write_bytes(b"\x80\x04K\x01.")  # a valid pickle of the int 1
    with pytest.raises(NagInputError, match=re.escape(name) + ".*refused"):
        model_ref("tiny", folder)


def test_config_asking_for_remote_code_is_refused(tmp_path):
    folder = save_tiny_bert(tmp_path / "tiny")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NagInputError, match=r"config\.json.*auto_map.*remote code is never run"):
        model_ref("tiny", folder)


@pytest.mark.parametrize(("remove", "message"), [
    ("model.safetensors", r"no weights \(\*\.safetensors\)"),
    ("tokenizer.json", "no tokenizer files"),
    ("config.json", "no config.json"),
])
def test_incomplete_model_folder_is_named(tmp_path, remove, message):
    folder = save_tiny_bert(tmp_path / "tiny")
    for f in folder.iterdir():  # tokenizer.json and its companions all go, so no tokenizer is left
        if f.name == remove or (remove == "tokenizer.json" and f.name in ("tokenizer_config.json", "special_tokens_map.json")):
            f.unlink()
    with pytest.raises(NagInputError, match=message):
        model_ref("tiny", folder)


# SQL injection, a path out of the root, Dagster's key separators, unicode lookalikes
# (one dot leader, Cyrillic dze), a leading dash (read as a flag), a space, the warehouse's '@'.
HOSTILE = ["a'; DROP TABLE x; --", "a|b", "a,b", "shard\u2024x", "\u0455hard", "-leading", "a b", "a@b", "a/b"]


@pytest.mark.parametrize("name", [n for n in HOSTILE if "/" not in n])
def test_hostile_shard_target_and_model_folder_names_are_refused(tmp_path, name):
    home = Home(tmp_path / "home")
    for d in ("pool", "targets", "models"):
        (home.root / d).mkdir(parents=True)
    pool_file = home.pool_dir / f"{name}.jsonl"
    pool_file.write_text('{"text": "x"}\n')
    with pytest.raises(NagInputError, match="shard name .* not usable as a partition key"):
        home.shard_files()
    pool_file.unlink()
    (home.targets_dir / name).mkdir()
    with pytest.raises(NagInputError, match="target name .* not usable"):
        home.target_dirs()
    (home.targets_dir / name).rmdir()
    (home.models_dir / name).mkdir()
    with pytest.raises(NagInputError, match="model name .* not usable"):
        discover_models(home)


@pytest.mark.parametrize("name", [*HOSTILE, "../../etc", "..", ""])
def test_hostile_names_given_as_arguments_never_build_a_path(tmp_path, name):
    from nag_core.models import resolve_model

    home = Home(tmp_path / "home")
    (home.root / "models").mkdir(parents=True)
    for build in (lambda: home.activation_cache_path("minilm-l6", name), lambda: home.activation_cache_path(name, "s1"),
                  lambda: home.target_cache_path("minilm-l6", name), lambda: home.target_dir(name),
                  lambda: home.shard_file(name), lambda: resolve_model(home, name)):
        with pytest.raises(NagInputError, match="not usable as a partition key"):
            build()


def test_data_root_path_with_quotes_still_gives_views(tmp_path):
    root = tmp_path / "it's a \"root\"; DROP TABLE x; --"
    wh = Warehouse(root)
    wh.write("signals", "t@m", pl.DataFrame({"docid": ["d1", "d2"], "value": [0.5, 0.25]}))
    wh.refresh_views()
    assert wh.query("SELECT sum(value) AS s FROM signals").item() == 0.75
    assert wh.query("SELECT count(*) FROM documents").item() == 0


def test_ui_binds_localhost_unless_told_otherwise(tmp_path):
    args = build_parser().parse_args(["ui", "--home", str(tmp_path)])
    argv = ui_argv(Path("/repo"), args.host, args.port)
    assert argv[:2] == ["dagster", "dev"] and argv[argv.index("-h") + 1] == "127.0.0.1"
    assert argv[argv.index("-p") + 1] == "3000"
    args = build_parser().parse_args(["ui", "--home", str(tmp_path), "--host", "0.0.0.0", "--port", "8080"])
    argv = ui_argv(Path("/repo"), args.host, args.port)
    assert argv[argv.index("-h") + 1] == "0.0.0.0" and argv[argv.index("-p") + 1] == "8080"


@pytest.mark.slow
def test_no_secret_from_the_environment_reaches_outputs_logs_or_metadata(tmp_path, monkeypatch):
    import dagster as dg
    from conftest import tiny_home

    from nag_select.runner import run_stale

    secrets = {"HF_TOKEN": "hf_FAKEsecret0123456789abcdef", "AWS_SECRET_ACCESS_KEY": "FAKEawsSECRETkey/0123456789+abc",
               "OPENAI_API_KEY": "sk-FAKEopenai0123456789"}
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    home = tiny_home(tmp_path / "home", ["alpha beta", "gamma delta", "alpha gamma"], {"t1": "alpha"})
    (home / "nag.yaml").write_text("budget_fraction: 1.0\n")  # 20% of 6 tokens would not fit one document
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    logs = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        report = run_stale(home, instance, device="cpu", log=logs.append)
        assert not report.failures and report.materialized
        records = instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION))
        metadata = [str(r.asset_materialization.metadata) for r in records]
    assert metadata
    files = [p for root in (home, dagster_home) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files) and any("sqlite" in p.name or p.suffix == ".db" for p in files)
    for value in secrets.values():
        assert not any(value in m for m in metadata + logs)
        for path in files:  # warehouse tables, caches, subsets, manifests, run storage, compute logs
            assert value.encode() not in path.read_bytes(), path
