"""Extraction on tiny random causal models (Llama, Qwen3, GPT-2) against a slow reference.

Every model and tokenizer is built in the test from a config, seeded; nothing is downloaded.
The reference runs one document at a time (batch of 1, no padding), captures the *input*
of each projection with a forward pre-hook, applies the projection's weight explicitly
(``x @ W.T + b`` for ``nn.Linear``, ``x @ W + b`` for GPT-2's ``Conv1D``, whose fused
``c_attn`` output is q|k|v in thirds), and takes mean |.| over tokens and ``torch.topk``.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random

import numpy as np
import pytest
import torch
from conftest import assert_same_topk
from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
from transformers import (GPT2Config, GPT2Model, LlamaConfig, LlamaModel, PreTrainedTokenizerFast, Qwen3Config,
                          Qwen3Model, T5Config, T5EncoderModel)

from nag_core.errors import NagInputError
from nag_core.extraction import Extractor

NEURON_TYPES = ("fwd_up", "fwd_down", "att_q", "att_k", "att_v", "att_o")
VOCAB_WORDS = 250
VOCAB_SIZE = VOCAB_WORDS + 2  # [PAD], [UNK]
HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTER = 48, 3, 4, 2, 12, 96
MAX_LENGTH = 24
TOP_K = 8
ATOL = 1e-4
RTOL = 1e-4


# ----------------------------------------------------------------------------- fixtures


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(VOCAB_WORDS)}}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def _texts() -> list[str]:
    rng = random.Random(7)
    # 1..40 words: short documents, ones that need padding in a batch, and ones truncated
    # to MAX_LENGTH (the two longest), plus an unknown word mapping to [UNK].
    lengths = [5, 1, 17, 40, 3, 24, 9, 30]
    texts = [" ".join(f"w{rng.randrange(VOCAB_WORDS)}" for _ in range(n)) for n in lengths]
    texts[4] += " unknownword"
    return texts


def _randomise_biases(model: torch.nn.Module, seed: int) -> None:
    """HF initialises biases to zero; random ones make the reference check the bias term."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") and "norm" not in name.lower() and not name.split(".")[-2].startswith("ln_"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _frozen(model):
    """Eval mode, no grads: what ``nag_core.models.load_model`` hands the extractor."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _llama(attn: str = "sdpa"):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
                      attention_bias=True, mlp_bias=True, initializer_range=0.1, pad_token_id=0,
                      bos_token_id=None, eos_token_id=None, attn_implementation=attn)
    model = LlamaModel(cfg)
    _randomise_biases(model, 1)
    return _frozen(model)


def _qwen3(attn: str = "sdpa"):
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
                      max_position_embeddings=64, initializer_range=0.1, pad_token_id=0, bos_token_id=None,
                      eos_token_id=None, attn_implementation=attn)
    return _frozen(Qwen3Model(cfg))


def _gpt2(attn: str = "sdpa"):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB_SIZE, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=2 * INTER,
                     n_positions=64, initializer_range=0.1, bos_token_id=None, eos_token_id=None,
                     attn_implementation=attn)
    model = GPT2Model(cfg)
    _randomise_biases(model, 2)
    return _frozen(model)


BUILDERS = {"llama": _llama, "qwen3": _qwen3, "gpt2": _gpt2}

# Where the reference reads each neuron type: module-name suffix (per layer) and, for
# GPT-2's fused c_attn, which third of its output.
REFERENCE_SITES = {
    "llama": {"fwd_up": ("mlp.up_proj", None), "fwd_down": ("mlp.down_proj", None),
              "att_q": ("self_attn.q_proj", None), "att_k": ("self_attn.k_proj", None),
              "att_v": ("self_attn.v_proj", None), "att_o": ("self_attn.o_proj", None)},
    "gpt2": {"fwd_up": ("mlp.c_fc", None), "fwd_down": ("mlp.c_proj", None), "att_q": ("attn.c_attn", 0),
             "att_k": ("attn.c_attn", 1), "att_v": ("attn.c_attn", 2), "att_o": ("attn.c_proj", None)},
}
REFERENCE_SITES["qwen3"] = REFERENCE_SITES["llama"]

# Expected output widths per neuron type, from the configs above.
EXPECTED_WIDTHS = {
    "llama": {"fwd_up": INTER, "fwd_down": HIDDEN, "att_q": HIDDEN, "att_k": KV_HEADS * HEAD_DIM,
              "att_v": KV_HEADS * HEAD_DIM, "att_o": HIDDEN},
    "qwen3": {"fwd_up": INTER, "fwd_down": HIDDEN, "att_q": HEADS * HEAD_DIM, "att_k": KV_HEADS * HEAD_DIM,
              "att_v": KV_HEADS * HEAD_DIM, "att_o": HIDDEN},
    "gpt2": {"fwd_up": 2 * INTER, "fwd_down": HIDDEN, "att_q": HIDDEN, "att_k": HIDDEN, "att_v": HIDDEN,
             "att_o": HIDDEN},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


@pytest.fixture(scope="module")
def texts():
    return _texts()


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def arch(request):
    return request.param, BUILDERS[request.param]()


# ----------------------------------------------------------------------------- reference


def _layer_modules(model, suffix: str) -> list[torch.nn.Module]:
    mods = [m for name, m in model.named_modules() if name.endswith("." + suffix)]
    assert len(mods) == LAYERS, (suffix, len(mods))
    return mods


def _project(module: torch.nn.Module, x: torch.Tensor, part: int | None) -> torch.Tensor:
    """The projection written out with the module's own weight (not calling the module)."""
    x = x.detach().double()
    if isinstance(module, torch.nn.Linear):
        out = x @ module.weight.double().T
    else:  # GPT-2 Conv1D: weight is (in, out)
        assert type(module).__name__ == "Conv1D", type(module)
        out = x @ module.weight.double()
    if module.bias is not None:
        out = out + module.bias.double()
    if part is not None:
        width = out.shape[-1] // 3
        out = out[..., part * width:(part + 1) * width]
    return out


def reference_impacts(model, tokenizer, text: str, arch_name: str, neuron_type: str) -> np.ndarray:
    """Full (L, width) impact matrix: one document alone, mean over its tokens of |h W + b|."""
    suffix, part = REFERENCE_SITES[arch_name][neuron_type]
    mods = _layer_modules(model, suffix)
    ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    assert ids, "reference needs a non-empty document"
    captured: dict[int, torch.Tensor] = {}
    handles = [m.register_forward_pre_hook(lambda _m, args, i=i: captured.__setitem__(i, args[0].detach().clone()))
               for i, m in enumerate(mods)]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, m in enumerate(mods):
        x = captured[i]
        assert x.shape[:2] == (1, len(ids))
        rows.append(_project(m, x[0], part).abs().mean(dim=0))
    return torch.stack(rows).numpy()


def reference_topk(impacts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    vals, idx = torch.topk(torch.from_numpy(impacts), k, dim=-1, largest=True, sorted=True)
    return idx.numpy(), vals.numpy()


def assert_matches_reference(idx: np.ndarray, vals: np.ndarray, impacts: np.ndarray, k: int, where: str) -> None:
    """Indices equal to the reference top-K, values close; a swap is tolerated only for a true tie."""
    ref_idx, ref_vals = reference_topk(impacts, k)
    np.testing.assert_allclose(vals, ref_vals, atol=ATOL, rtol=RTOL, err_msg=where)
    # Each extracted neuron's reference impact is its reported value.
    np.testing.assert_allclose(np.take_along_axis(impacts, idx.astype(np.int64), axis=-1), vals, atol=ATOL,
                               rtol=RTOL, err_msg=where)
    for layer in range(idx.shape[0]):
        assert len(set(idx[layer].tolist())) == k, f"{where}: duplicate neurons in layer {layer}"
        diff = idx[layer].astype(np.int64) != ref_idx[layer]
        if diff.any():
            gap = np.abs(impacts[layer, idx[layer][diff].astype(np.int64)] - impacts[layer, ref_idx[layer][diff]])
            assert gap.max() < 1e-6, f"{where}: layer {layer} indices {idx[layer]} != reference {ref_idx[layer]}"



# ----------------------------------------------------------------------------- tests


def test_tokenizer_is_plain(tokenizer):
    enc = tokenizer(["w1 w2 w3", "w4"], add_special_tokens=False, truncation=True, max_length=2)
    assert enc["input_ids"] == [[3, 4], [6]]
    assert tokenizer.pad_token_id == 0


@pytest.mark.parametrize("neuron_type", NEURON_TYPES)
def test_matches_slow_reference(arch, tokenizer, texts, neuron_type):
    name, model = arch
    ex = Extractor(model, tokenizer, neuron_types=[neuron_type], top_k=TOP_K, max_length=MAX_LENGTH, batch_size=3)
    assert ex.num_layers == LAYERS
    assert ex.width(neuron_type) == EXPECTED_WIDTHS[name][neuron_type]
    feats, stats = ex.extract(texts)
    f = feats[neuron_type]
    assert f.indices.dtype == np.uint16 and f.values.dtype == np.float32
    assert f.indices.shape == f.values.shape == (len(texts), LAYERS, TOP_K)
    assert f.num_layers == LAYERS
    assert np.all(np.diff(f.values, axis=-1) <= 0), "values must be in descending order"
    assert np.all(f.indices < EXPECTED_WIDTHS[name][neuron_type])
    lengths = [len(ids) for ids in ex.tokenize(texts)]
    assert max(lengths) == MAX_LENGTH and min(lengths) == 1
    assert stats.documents == len(texts) and stats.tokens == sum(lengths)
    for d, text in enumerate(texts):
        impacts = reference_impacts(model, tokenizer, text, name, neuron_type)
        assert impacts.shape == (LAYERS, EXPECTED_WIDTHS[name][neuron_type])
        assert_matches_reference(f.indices[d], f.values[d], impacts, TOP_K, f"{name}/{neuron_type}/doc{d}")


def test_all_types_in_one_pass_match_single_type_runs(arch, tokenizer, texts):
    """Hooking all six types at once (GPT-2: three hooks on one c_attn) changes nothing."""
    name, model = arch
    together, _ = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH,
                            batch_size=4).extract(texts)
    for nt in NEURON_TYPES:
        alone, _ = Extractor(model, tokenizer, neuron_types=[nt], top_k=TOP_K, max_length=MAX_LENGTH,
                             batch_size=4).extract(texts)
        np.testing.assert_array_equal(together[nt].indices, alone[nt].indices, err_msg=f"{name}/{nt}")
        np.testing.assert_allclose(together[nt].values, alone[nt].values, atol=1e-6, err_msg=f"{name}/{nt}")
    # The three thirds of GPT-2's c_attn are different projections.
    assert not np.array_equal(together["att_q"].values, together["att_k"].values)


def test_attention_q_from_hidden_states(arch, tokenizer, texts):
    """Hook-free cross-check: q's input is input-norm(hidden_states[l]) from output_hidden_states."""
    name, model = arch
    ex = Extractor(model, tokenizer, neuron_types=["att_q"], top_k=TOP_K, max_length=MAX_LENGTH, batch_size=8)
    feats, _ = ex.extract(texts)
    layers = model.h if name == "gpt2" else model.layers
    for d, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False).hidden_states
            rows = []
            for layer in range(LAYERS):
                if name == "gpt2":
                    rows.append(_project(layers[layer].attn.c_attn, layers[layer].ln_1(hs[layer])[0], 0))
                else:
                    rows.append(_project(layers[layer].self_attn.q_proj, layers[layer].input_layernorm(hs[layer])[0], None))
        impacts = torch.stack([r.abs().mean(dim=0) for r in rows]).numpy()
        assert_matches_reference(feats["att_q"].indices[d], feats["att_q"].values[d], impacts, TOP_K,
                                 f"{name}/att_q-hidden/doc{d}")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_batch_independence(name, attn, tokenizer, texts):
    model = BUILDERS[name](attn)
    ex = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH, batch_size=len(texts))
    together, stats = ex.extract(texts)
    assert stats.padded_tokens == len(texts) * MAX_LENGTH > stats.tokens  # one padded batch
    # Reversed order and small batches (different neighbours, different padding).
    ex_small = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH, batch_size=3)
    rev, _ = ex_small.extract(texts[::-1])
    for d, text in enumerate(texts):
        alone, alone_stats = ex.extract([text])
        assert alone_stats.padded_tokens == alone_stats.tokens  # no padding at all
        for nt in NEURON_TYPES:
            where = f"{name}/{attn}/{nt}/doc{d}"
            assert_same_topk(together[nt].indices[d], together[nt].values[d], alone[nt].indices[0],
                             alone[nt].values[0], where)
            r = len(texts) - 1 - d
            assert_same_topk(rev[nt].indices[r], rev[nt].values[r], alone[nt].indices[0], alone[nt].values[0], where)


def test_padding_token_id_is_irrelevant(tokenizer, texts):
    """Right padding + mask: what id fills the padding must not change any real document."""
    model = _llama()
    ex = Extractor(model, tokenizer, neuron_types=["fwd_up", "att_o"], top_k=TOP_K, max_length=MAX_LENGTH, batch_size=8)
    base, _ = ex.extract(texts)
    ex.pad_id = VOCAB_SIZE - 1
    other, _ = ex.extract(texts)
    for nt in ("fwd_up", "att_o"):
        for d in range(len(texts)):
            assert_same_topk(base[nt].indices[d], base[nt].values[d], other[nt].indices[d], other[nt].values[d],
                             f"{nt}/doc{d}")


def test_truncation_to_max_length(tokenizer):
    model = _gpt2()
    long_text = " ".join(f"w{i}" for i in range(60))
    prefix = " ".join(f"w{i}" for i in range(MAX_LENGTH))
    ex = Extractor(model, tokenizer, neuron_types=["fwd_up"], top_k=TOP_K, max_length=MAX_LENGTH)
    a, stats = ex.extract([long_text, prefix])
    assert stats.tokens == 2 * MAX_LENGTH
    np.testing.assert_array_equal(a["fwd_up"].indices[0], a["fwd_up"].indices[1])
    np.testing.assert_allclose(a["fwd_up"].values[0], a["fwd_up"].values[1], atol=1e-6)


def test_empty_document_gives_finite_zero_impacts(tokenizer):
    model = _llama()
    ex = Extractor(model, tokenizer, neuron_types=["fwd_up"], top_k=TOP_K, max_length=MAX_LENGTH)
    for batch in (["w1 w2 w3", ""], [""]):
        f, stats = ex.extract(batch)
        assert np.all(np.isfinite(f["fwd_up"].values))
        assert np.all(f["fwd_up"].values[-1] == 0.0)


def test_extract_no_documents(tokenizer):
    """An empty shard (e.g. every document an exact duplicate of another shard's) has no texts;
    ``features.to_table`` handles n == 0, so ``extract([])`` must return empty arrays."""
    ex = Extractor(_llama(), tokenizer, neuron_types=["fwd_up", "att_o"], top_k=TOP_K, max_length=MAX_LENGTH)
    f, stats = ex.extract([])
    for nt in ("fwd_up", "att_o"):
        assert f[nt].indices.shape == f[nt].values.shape == (0, LAYERS, TOP_K)
        assert f[nt].indices.dtype == np.uint16
    assert (stats.documents, stats.tokens, stats.padded_tokens) == (0, 0, 0)


def test_top_k_equal_to_width_is_allowed(tokenizer, texts):
    model = _llama()
    width = KV_HEADS * HEAD_DIM
    f, _ = Extractor(model, tokenizer, neuron_types=["att_k"], top_k=width, max_length=MAX_LENGTH).extract(texts[:2])
    # Every neuron appears exactly once per layer: a permutation.
    assert np.all(np.sort(f["att_k"].indices, axis=-1) == np.arange(width))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_top_k_larger_than_layer_width_raises(name, tokenizer):
    model = BUILDERS[name]()
    widths = EXPECTED_WIDTHS[name]
    for nt in NEURON_TYPES:
        with pytest.raises(NagInputError, match=rf"top_k={widths[nt] + 1}.*{nt}"):
            Extractor(model, tokenizer, neuron_types=[nt], top_k=widths[nt] + 1, max_length=MAX_LENGTH)
    # Mixed types: the narrowest one decides (Llama/Qwen3 att_k is GQA-narrow).
    narrow = min(widths, key=widths.get)
    with pytest.raises(NagInputError, match=narrow):
        Extractor(model, tokenizer, neuron_types=["fwd_up", narrow], top_k=widths[narrow] + 1, max_length=MAX_LENGTH)


class TinyNet(torch.nn.Module):
    """Not a transformer: no module name matches any pattern."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB_SIZE, 8)
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, input_ids, attention_mask=None):
        return self.proj(self.emb(input_ids))


@pytest.mark.parametrize("neuron_type", NEURON_TYPES)
def test_unknown_architecture_raises_naming_it(neuron_type, tokenizer):
    with pytest.raises(NagInputError, match=rf"TinyNet.*{neuron_type}"):
        Extractor(TinyNet(), tokenizer, neuron_types=[neuron_type], top_k=2, max_length=MAX_LENGTH)


def test_uncovered_transformers_architecture_raises_naming_it(tokenizer):
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=VOCAB_SIZE, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    model = T5EncoderModel(cfg).eval()  # FFN is DenseReluDense.wi/wo: not a known name
    with pytest.raises(NagInputError, match=r"T5EncoderModel.*fwd_up"):
        Extractor(model, tokenizer, neuron_types=["fwd_up"], top_k=4, max_length=MAX_LENGTH)


def test_unknown_neuron_type_raises(tokenizer):
    with pytest.raises(NagInputError, match="fwd_sideways"):
        Extractor(_gpt2(), tokenizer, neuron_types=["fwd_sideways"], top_k=4, max_length=MAX_LENGTH)


def test_hooks_are_removed_after_extract(tokenizer, texts):
    model = _qwen3()
    ex = Extractor(model, tokenizer, neuron_types=NEURON_TYPES, top_k=TOP_K, max_length=MAX_LENGTH)
    ex.extract(texts[:3])
    assert all(not m._forward_hooks for m in model.modules())
