"""Extraction with the real bundled MiniLM-L6 against a slow reference, and the cache formats.

The reference runs each sentence alone (batch of 1, no padding), captures the input of
``intermediate.dense`` (fwd_up) and ``attention.output.dense`` (att_o) with forward
pre-hooks, applies ``x @ W.T + b`` with the module's own weight, and takes mean |.| over
tokens and ``torch.topk``. The model is loaded once for the module.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import re

import numpy as np
import pytest
import torch
from conftest import assert_same_topk

from nag_core.extraction import Extractor
from nag_core.features import export_jsonl, import_jsonl, read_cache, read_meta, write_cache
from nag_core.models import default_model_path, load_model, model_ref

LAYERS = 6
TOP_K = 32
MAX_LENGTH = 40
NEURON_TYPES = ("fwd_up", "att_o", "fwd_down")
# Full module names per layer (fwd_down's "output.dense" must not pick attention.output.dense).
SITES = {"fwd_up": r"encoder\.layer\.\d+\.intermediate\.dense", "att_o": r"encoder\.layer\.\d+\.attention\.output\.dense",
         "fwd_down": r"encoder\.layer\.\d+\.output\.dense", "att_q": r"encoder\.layer\.\d+\.attention\.self\.query",
         "att_k": r"encoder\.layer\.\d+\.attention\.self\.key", "att_v": r"encoder\.layer\.\d+\.attention\.self\.value"}
WIDTHS = {"fwd_up": 1536, "att_o": 384, "fwd_down": 384}

SENTENCES = [
    "The mitochondria is the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Stocks fell sharply on Tuesday after the central bank raised interest rates by half a point.",
    "Preheat the oven to 180 degrees, then whisk the eggs with sugar until pale and fluffy.",
    "Hi",
    "The defendant's appeal was dismissed because the lower court had correctly applied the statute of "
    "limitations, and the panel found no procedural error in the admission of the contested evidence, "
    "which the appellant had argued was obtained without a valid warrant in violation of the fourth amendment.",
    "Solve for x: 3x^2 - 12x + 9 = 0, so x = 1 or x = 3.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def loaded():
    ref = model_ref("minilm-l6", default_model_path())
    model, tokenizer = load_model(ref, "cpu")
    return ref, model, tokenizer


@pytest.fixture(scope="module")
def extractor(loaded):
    _, model, tokenizer = loaded
    return Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH, batch_size=3)


@pytest.fixture(scope="module")
def extracted(extractor):
    return extractor.extract(SENTENCES)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, truncation=True, max_length=MAX_LENGTH)["input_ids"]


def reference_impacts(model, tokenizer, text: str, neuron_type: str) -> np.ndarray:
    """(L, width): one sentence alone, mean over its tokens of |x W^T + b| at each layer."""
    mods = [m for name, m in model.named_modules() if re.fullmatch(SITES[neuron_type], name)]
    assert len(mods) == LAYERS
    ids = _ids(tokenizer, text)
    captured: dict[int, torch.Tensor] = {}
    handles = [m.register_forward_pre_hook(lambda _m, args, i=i: captured.__setitem__(i, args[0].detach().clone()))
               for i, m in enumerate(mods)]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, m in enumerate(mods):
        x = captured[i][0].double()
        assert x.shape[0] == len(ids)
        out = x @ m.weight.detach().double().T + m.bias.detach().double()
        rows.append(out.abs().mean(dim=0))
    return torch.stack(rows).numpy()



def test_tokenisation_has_no_special_tokens_and_truncates(loaded, extractor):
    _, _, tokenizer = loaded
    ids = extractor.tokenize(SENTENCES)
    special = set(tokenizer.all_special_ids)
    assert all(not (set(row) & special - {tokenizer.unk_token_id}) for row in ids)  # no [CLS]/[SEP]/[PAD]
    assert len(ids[4]) == 1  # "Hi"
    assert len(ids[5]) == MAX_LENGTH  # the legal sentence is truncated
    assert ids[5] == tokenizer(SENTENCES[5], add_special_tokens=False)["input_ids"][:MAX_LENGTH]


def test_hook_sites_are_the_bert_projections(loaded, extractor):
    """Each neuron type hooks exactly one module per layer, in layer order, and the right one."""
    from nag_core.hooks import find_sites

    model = loaded[1]
    for nt, pattern in SITES.items():
        sites = find_sites(model, nt)
        assert [s.layer for s in sites] == list(range(LAYERS)), nt
        assert [s.module_name for s in sites] == [pattern.replace(r"\d+", str(i)).replace("\\", "") for i in range(LAYERS)], nt
        assert all(s.fused_part is None for s in sites)
    assert extractor.sites["fwd_down"][2].module_name == "encoder.layer.2.output.dense"


def test_shapes_and_dtypes(extracted, extractor):
    feats, stats = extracted
    assert extractor.num_layers == LAYERS
    for nt in NEURON_TYPES:
        assert extractor.width(nt) == WIDTHS[nt]
        f = feats[nt]
        assert f.indices.dtype == np.uint16 and f.values.dtype == np.float32
        assert f.indices.shape == f.values.shape == (len(SENTENCES), LAYERS, TOP_K)
        assert np.all(np.diff(f.values, axis=-1) <= 0)
        assert np.all(f.values > 0) and np.all(np.isfinite(f.values))
        assert np.all(f.indices < WIDTHS[nt])
    assert stats.documents == len(SENTENCES)
    assert stats.tokens == sum(len(r) for r in extractor.tokenize(SENTENCES))
    # Different domains activate different neurons.
    assert not np.array_equal(feats["fwd_up"].indices[0], feats["fwd_up"].indices[1])


@pytest.mark.parametrize("neuron_type", NEURON_TYPES)
def test_matches_slow_reference(loaded, extracted, neuron_type):
    _, model, tokenizer = loaded
    f = extracted[0][neuron_type]
    for d, text in enumerate(SENTENCES):
        impacts = reference_impacts(model, tokenizer, text, neuron_type)
        assert impacts.shape == (LAYERS, WIDTHS[neuron_type])
        ref_vals, ref_idx = torch.topk(torch.from_numpy(impacts), TOP_K, dim=-1)
        where = f"{neuron_type}/doc{d}"
        np.testing.assert_allclose(f.values[d], ref_vals.numpy(), rtol=1e-4, atol=1e-4, err_msg=where)
        # Each reported neuron's reference impact equals its reported value ...
        np.testing.assert_allclose(np.take_along_axis(impacts, f.indices[d].astype(np.int64), axis=-1), f.values[d],
                                   rtol=1e-4, atol=1e-4, err_msg=where)
        # ... and the indices are the reference's, except where two impacts tie within rounding.
        assert_same_topk(f.indices[d], f.values[d], ref_idx.numpy(), ref_vals.numpy().astype(np.float32), where,
                         tol=1e-4)


def test_batch_independence(loaded, extracted):
    _, model, tokenizer = loaded
    together = extracted[0]
    one_batch, stats = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH,
                                 batch_size=len(SENTENCES)).extract(SENTENCES[::-1])
    assert stats.padded_tokens > stats.tokens  # padding really happened
    single = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH, batch_size=1)
    n = len(SENTENCES)
    for d, text in enumerate(SENTENCES):
        alone, _ = single.extract([text])
        for nt in NEURON_TYPES:
            where = f"{nt}/doc{d}"
            assert_same_topk(together[nt].indices[d], together[nt].values[d], alone[nt].indices[0],
                             alone[nt].values[0], where)
            assert_same_topk(one_batch[nt].indices[n - 1 - d], one_batch[nt].values[n - 1 - d], alone[nt].indices[0],
                             alone[nt].values[0], where)


def _meta(ref, extractor) -> dict:
    return {"model": ref.name, "model_fingerprint": ref.fingerprint, "tokenizer_hash": ref.tokenizer_hash,
            "top_k": TOP_K, "num_layers": extractor.num_layers, "max_length": MAX_LENGTH,
            "neuron_types": list(NEURON_TYPES), "widths": {nt: extractor.width(nt) for nt in NEURON_TYPES}}


def test_cache_round_trip(tmp_path, loaded, extractor, extracted):
    ref = loaded[0]
    feats = extracted[0]
    docids = [f"doc-{i:02d}" for i in range(len(SENTENCES))]
    path = write_cache(tmp_path / "cache" / "shard.parquet", docids, feats, _meta(ref, extractor))
    assert read_meta(path)["num_layers"] == LAYERS
    for nt in NEURON_TYPES:
        got_ids, idx, vals, meta = read_cache(path, nt, with_values=True)
        assert got_ids == docids
        assert meta["top_k"] == TOP_K and meta["neuron_types"] == list(NEURON_TYPES)
        assert idx.dtype == np.uint16 and idx.shape == (len(SENTENCES), LAYERS, TOP_K)
        np.testing.assert_array_equal(idx, feats[nt].indices)
        assert vals.dtype == np.float32 and vals.shape == idx.shape
        np.testing.assert_allclose(vals, feats[nt].values, rtol=1e-3, atol=1e-4)  # stored as float16
        np.testing.assert_array_equal(vals, feats[nt].values.astype(np.float16).astype(np.float32))
        _, idx_only, no_vals, _ = read_cache(path, nt)
        assert no_vals is None
        np.testing.assert_array_equal(idx_only, idx)


def test_jsonl_reference_format_round_trip(tmp_path, loaded, extractor, extracted):
    ref = loaded[0]
    feats = extracted[0]
    docids = [f"doc-{i:02d}" for i in range(len(SENTENCES))]
    half = len(SENTENCES) // 2
    paths = [write_cache(tmp_path / "a.parquet", docids[:half], {nt: _slice(feats[nt], 0, half) for nt in NEURON_TYPES},
                         _meta(ref, extractor)),
             write_cache(tmp_path / "b.parquet", docids[half:],
                         {nt: _slice(feats[nt], half, len(SENTENCES)) for nt in NEURON_TYPES}, _meta(ref, extractor))]
    out = tmp_path / "export" / "fwd_up.jsonl"
    assert export_jsonl(paths, out, "fwd_up") == len(SENTENCES)

    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(SENTENCES)
    for d, line in enumerate(lines):
        rec = json.loads(line)
        assert list(rec) == ["docid", "fwd_up_feature"]
        assert rec["docid"] == docids[d]
        assert list(rec["fwd_up_feature"]) == ["layer_topk_value_index"]
        flat = rec["fwd_up_feature"]["layer_topk_value_index"]
        assert len(flat) == 6 * TOP_K
        assert all(type(v) is int for v in flat)
        # Layer-major: layer l's K neurons, most impactful first, then layer l+1's.
        assert flat == feats["fwd_up"].indices[d].reshape(-1).tolist()
        assert flat[:TOP_K] == feats["fwd_up"].indices[d, 0].tolist()

    got_ids, idx = import_jsonl(out, "fwd_up", LAYERS, TOP_K)
    assert got_ids == docids
    assert idx.dtype == np.uint16
    np.testing.assert_array_equal(idx, feats["fwd_up"].indices)

    out_o = tmp_path / "att_o.jsonl"
    export_jsonl(paths, out_o, "att_o")
    assert set(json.loads(out_o.read_text().splitlines()[0])) == {"docid", "att_o_feature"}
    np.testing.assert_array_equal(import_jsonl(out_o, "att_o", LAYERS, TOP_K)[1], feats["att_o"].indices)


def _slice(f, lo, hi):
    from nag_core.extraction import Features

    return Features(f.indices[lo:hi], f.values[lo:hi])


def test_tokenisation_blocks_do_not_change_features(monkeypatch, extractor, extracted):
    """Memory is bounded by tokenising in blocks; block edges must not move any document's NAG."""
    import nag_core.extraction as extraction

    monkeypatch.setattr(extraction, "TOKENIZE_BLOCK", 3)
    blocked, stats = extractor.extract(SENTENCES)
    assert stats.documents == len(SENTENCES) and stats.tokens == extracted[1].tokens
    for nt in NEURON_TYPES:
        for d in range(len(SENTENCES)):
            assert_same_topk(blocked[nt].indices[d], blocked[nt].values[d], extracted[0][nt].indices[d],
                             extracted[0][nt].values[d], f"{nt}/doc{d}")
