"""The byte LM, its perplexity and its gradient features, on tiny models trained in the test.

The corpus is two small domains (English prose about medicine, Python code); a 1-layer
byte GPT-2 (d_model 32) trained for 300 steps (about 2 s) on both already tells them apart from noise,
which is all the signals need.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from nag_core.errors import NagInputError
from nag_core.signals import causal_lm, gradient, perplexity

PROSE = [
    "The patient was admitted with a fever and a cough, and the doctor ordered a chest x-ray.",
    "After two days of antibiotics the infection cleared and the patient went home.",
    "The nurse measured the blood pressure of every patient on the ward each morning.",
    "Chronic kidney disease is treated by controlling blood pressure and blood sugar.",
    "The doctor explained the side effects of the drug to the patient and her family.",
    "A fever that lasts more than three days should be examined by a doctor.",
]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "import os\nfor name in os.listdir('.'):\n    print(name)\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
]
TINY = dict(d_model=32, layers=1, heads=2, context=32, batch_size=8, lr=1e-2)


def _shuffled(text: str, seed: int = 0) -> str:
    chars = list(text)
    random.Random(seed).shuffle(chars)
    return "".join(chars)


@pytest.fixture(scope="module")
def lm():
    return causal_lm.train_byte_lm(PROSE + CODE, seed=0, steps=300, threads=1, **TINY)


# ---------------------------------------------------------------- training

def test_training_is_deterministic_for_a_seed():
    a = causal_lm.train_byte_lm(PROSE, seed=3, steps=4, threads=1, **TINY).state_dict()
    b = causal_lm.train_byte_lm(PROSE, seed=3, steps=4, threads=1, **TINY).state_dict()
    c = causal_lm.train_byte_lm(PROSE, seed=4, steps=4, threads=1, **TINY).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    causal_lm.train_byte_lm(PROSE, seed=0, steps=1, **TINY)
    assert torch.equal(torch.rand(3), expected)


def test_training_refuses_an_empty_sample():
    with pytest.raises(NagInputError, match="no text"):
        causal_lm.train_byte_lm(["", ""], steps=1, **TINY)


# ---------------------------------------------------------------- perplexity

def test_in_distribution_text_has_lower_perplexity_than_its_shuffled_bytes(lm):
    texts = PROSE[:3] + CODE[:3]
    real = perplexity.byte_perplexity(lm, texts)
    noise = perplexity.byte_perplexity(lm, [_shuffled(t) for t in texts])
    assert (real < noise).all(), (real, noise)
    assert (real < 8.0).all()  # better than the uniform byte model


def test_byte_perplexity_matches_the_models_own_loss(lm):
    text = PROSE[0][:30]  # one window (context 32)
    ids = torch.tensor([list(text.encode())])
    with torch.no_grad():
        loss = lm(input_ids=ids, labels=ids).loss  # mean nats over bytes 1..n-1
    got = perplexity.byte_perplexity(lm, [text])[0]
    assert got == pytest.approx(float(loss) / np.log(2), rel=1e-5)


def test_byte_perplexity_does_not_depend_on_the_batch(lm):
    long = " ".join(PROSE)  # several windows of 33 bytes
    texts = [CODE[0], long, PROSE[1], "x", ""]
    batched = perplexity.byte_perplexity(lm, texts, batch_size=16)
    alone = np.array([perplexity.byte_perplexity(lm, [t], batch_size=1)[0] for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert batched[3] == batched[4] == perplexity.UNIFORM_BITS_PER_BYTE  # < 2 bytes: nothing to predict


def test_max_bytes_keeps_only_the_prefix(lm):
    text = PROSE[0] + _shuffled(PROSE[1])
    n = len(PROSE[0].encode())
    np.testing.assert_allclose(perplexity.byte_perplexity(lm, [text], max_bytes=n),
                               perplexity.byte_perplexity(lm, [PROSE[0]]), atol=1e-6)


def _word_tokenizer(words: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def test_token_perplexity_is_batch_independent_and_equals_the_models_loss():
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _word_tokenizer(50)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=52, n_positions=32, n_embd=16, n_layer=2, n_head=2)).eval()
    rng = random.Random(1)
    texts = [" ".join(f"w{rng.randrange(50)}" for _ in range(n)) for n in (3, 12, 7, 1, 40)]
    batched = perplexity.token_perplexity(model, tok, texts, max_length=20, batch_size=8)
    alone = np.array([perplexity.token_perplexity(model, tok, [t], max_length=20)[0] for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    ids = torch.tensor([tok(texts[1], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert batched[1] == pytest.approx(float(loss) / np.log(2), rel=1e-5)
    assert batched[3] == pytest.approx(np.log2(52))  # one token: the uniform model's value


def test_token_perplexity_needs_an_lm_head():
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(NagInputError, match="AutoModelForCausalLM"):
        perplexity.token_perplexity(GPT2Model(GPT2Config(vocab_size=52, n_embd=16, n_layer=1, n_head=2)),
                                    _word_tokenizer(50), ["w1 w2"])


# ---------------------------------------------------------------- gradient features

def test_gradient_features_are_unit_norm_deterministic_and_batch_independent(lm):
    texts = [PROSE[0], CODE[1], "", " ".join(CODE)]
    f = gradient.gradient_features(lm, texts, dim=256, seed=1, batch_size=3)
    assert f.shape == (4, 256) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    assert not f[2].any()  # an empty text has no loss: zero feature
    np.testing.assert_array_equal(f, gradient.gradient_features(lm, texts, dim=256, seed=1, batch_size=3))
    alone = np.stack([gradient.gradient_features(lm, [t], dim=256, seed=1)[0] for t in texts])
    np.testing.assert_allclose(f, alone, atol=1e-5)
    other_seed = gradient.gradient_features(lm, texts[:1], dim=256, seed=2)
    assert abs(float(other_seed[0] @ f[0])) < 0.5  # another projection


def test_projection_preserves_gradient_cosines(lm):
    params = [p for _, p in gradient.selected_parameters(lm)]
    names = [n for n, _ in gradient.selected_parameters(lm)]
    assert names == ["transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
                     "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias",
                     "transformer.ln_f.weight", "transformer.ln_f.bias"]
    texts = [PROSE[0], PROSE[2], CODE[0]]
    full = [gradient._document_gradient(lm, params, perplexity.byte_windows(t, 256, 32)) for t in texts]
    full = torch.stack(full)
    full = full / full.norm(dim=1, keepdim=True)
    f = gradient.gradient_features(lm, texts, dim=2048)
    exact = (full @ full.T).numpy()
    np.testing.assert_allclose(f @ f.T, exact, atol=0.1)  # JL: error ~ 1/sqrt(2048)


def test_influence_is_higher_for_same_domain_documents(lm):
    target = gradient.gradient_features(lm, CODE[:3])
    pool = gradient.gradient_features(lm, CODE[3:] + PROSE[3:])
    s = gradient.gradient_influence(pool, target)
    assert s.shape == (6,) and (np.abs(s) <= 1 + 1e-9).all()
    # single documents are noisy under so small a model; the domains' means and the best match are not
    assert s[:3].mean() > s[3:].mean() + 0.05, s
    assert s.argmax() < 3, s


def test_influence_and_filter_errors(lm):
    with pytest.raises(NagInputError, match="param_filter"):
        gradient.gradient_features(lm, ["abc"], param_filter=lambda name: False)
    with pytest.raises(NagInputError, match="average to zero"):
        gradient.gradient_influence(np.zeros((2, 8)), np.zeros((1, 8)))
    with pytest.raises(NagInputError, match="same dim"):
        gradient.gradient_influence(np.zeros((2, 8)), np.ones((1, 4)))


# ---------------------------------------------------------------- save / load

def test_save_load_round_trip_is_safetensors_only(lm, tmp_path):
    target = tmp_path / "byte_lm"
    causal_lm.save_byte_lm(lm, target, {"seed": 0, "steps": 300, "sample_docids_hash": "abc123"})
    assert sorted(p.name for p in target.iterdir()) == ["byte_lm.json", "config.json", "generation_config.json",
                                                       "model.safetensors"]
    meta = causal_lm.load_meta(target)
    assert meta["sample_docids_hash"] == "abc123" and meta["training"]["steps"] == 300
    assert meta["versions"]["torch"] == torch.__version__
    loaded = causal_lm.load_byte_lm(target)
    texts = PROSE[:2] + CODE[:2]
    np.testing.assert_array_equal(perplexity.byte_perplexity(loaded, texts), perplexity.byte_perplexity(lm, texts))
    # saving again replaces the directory whole, and leaves no temporary sibling
    causal_lm.save_byte_lm(lm, target, {"seed": 1})
    assert causal_lm.load_meta(target)["seed"] == 1 and "sample_docids_hash" not in causal_lm.load_meta(target)
    assert [p.name for p in tmp_path.iterdir()] == ["byte_lm"]


def test_pickled_weights_are_refused(lm, tmp_path):
    bad = tmp_path / "pickled"
    bad.mkdir()
    lm.config.save_pretrained(bad)
    torch.save(lm.state_dict(), bad / "pytorch_model.bin")
    with pytest.raises(NagInputError, match="safetensors only"):
        causal_lm.load_byte_lm(bad)
    (bad / "model.safetensors").write_bytes(b"")  # present but not a byte LM's weights
    with pytest.raises(NagInputError):
        causal_lm.load_byte_lm(bad)
    assert json.loads((bad / "config.json").read_text())["vocab_size"] == 256
