"""A small byte-level causal LM trained from scratch, for perplexity and gradient signals.

Perplexity filters and LESS-style gradient influence need a causal LM, and none ships
offline with this project. A GPT-2 over raw UTF-8 bytes (vocabulary 256, no tokenizer)
can be trained on a sample of the pool itself in minutes on a CPU, and favours no
tokenizer's view of any domain. It is a weak LM; its use is to rank documents relative to
each other under one fixed model, not to report absolute perplexities.

Training reads random windows of ``context + 1`` bytes from the sample's texts joined by
``SEP`` (position t predicts byte t + 1), AdamW with a linear warm-up over the first 10 %
of steps then cosine decay to 0:

    lr(s) = lr * min(1, (s + 1) / warm) * (1 + cos(pi * min(1, s / steps))) / 2,  warm = max(1, steps // 10)

and gradient clipping at norm 1. The seed fixes the initial weights (drawn inside a forked
torch RNG, so the caller's global RNG is untouched) and the window positions (a numpy
generator). For a fixed torch thread count the result is bit-identical run to run;
``threads=1`` also makes it identical across machines with the same torch build.

Saved models are safetensors only, loaded with ``use_safetensors=True`` and no remote code,
so loading a model directory never runs code from it.

Cost: the defaults (d_model 128, 2 layers, 4 heads, context 128, 200 steps of 16 windows,
0.45M parameters) train in about 45 s on one core of this project's shared 2-core AMD EPYC.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from nag_core.errors import NagInputError

VOCAB = 256
SEP = b"\n\n"  # document separator in the training stream
META_FILE = "byte_lm.json"


def tiny_gpt(d_model: int, layers: int, heads: int, context: int):
    """An untrained byte-level GPT-2 (no dropout: training is then a function of the seed alone)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_positions=context, n_embd=d_model, n_layer=layers, n_head=heads,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=10, eos_token_id=10)
    return GPT2LMHeadModel(cfg)


def as_bytes(texts: Sequence[str]) -> np.ndarray:
    """The texts' UTF-8 bytes joined by ``SEP``, as one uint8 stream."""
    return np.frombuffer(SEP.join(t.encode("utf-8") for t in texts), dtype=np.uint8)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_on_bytes(data: np.ndarray, *, seed: int, steps: int, d_model: int, layers: int, heads: int,
                   context: int, batch_size: int, lr: float, log: Callable[[str], None] | None = None):
    """A byte GPT-2 trained from scratch on random windows of the byte stream ``data`` (eval mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tiny_gpt(d_model, layers, heads, context)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    rng = np.random.default_rng(seed)
    stream = torch.from_numpy(np.asarray(data).astype(np.int64))
    span = context + 1
    if stream.numel() < span:  # a tiny sample: repeat it to fill a window
        stream = stream.repeat(span // max(1, stream.numel()) + 1)
    model.train()
    for step in range(steps):
        starts = rng.integers(0, stream.numel() - span + 1, size=batch_size)
        x = torch.stack([stream[s: s + span] for s in starts])
        logits = model(input_ids=x[:, :-1]).logits  # position t predicts byte t + 1
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log is not None and (step + 1) % max(1, steps // 10) == 0:
            log(f"byte LM step {step + 1}/{steps}: loss {float(loss.detach()) / math.log(2):.3f} bits/byte")
    model.eval()
    return model


def train_byte_lm(texts: Sequence[str], *, seed: int = 0, steps: int = 200, d_model: int = 128, layers: int = 2,
                  heads: int = 4, context: int = 128, batch_size: int = 16, lr: float = 3e-3,
                  log: Callable[[str], None] | None = None, threads: int | None = None):
    """A byte GPT-2 trained on ``texts`` (the caller's seeded sample of the pool).

    The training settings are recorded in ``model.config.byte_lm_training`` (so they travel
    in config.json); ``threads`` pins torch's thread count while training.
    """
    texts = list(texts)
    if not any(texts):
        raise NagInputError("byte LM: the training sample has no text; give it at least one non-empty document")
    if d_model % heads:
        raise NagInputError(f"byte LM: d_model={d_model} must be a multiple of heads={heads}")
    data = as_bytes(texts)
    with _torch_threads(threads):
        model = train_on_bytes(data, seed=seed, steps=steps, d_model=d_model, layers=layers, heads=heads,
                               context=context, batch_size=batch_size, lr=lr, log=log)
    model.config.byte_lm_training = {"seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
                                     "context": context, "documents": len(texts), "bytes": int(data.size)}
    return model


def _versions() -> dict[str, str]:
    import safetensors
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__}


def save_byte_lm(model, directory: Path, meta: dict) -> None:
    """Write ``model`` (safetensors) and its metadata to ``directory``, replacing it whole.

    ``meta`` is the caller's provenance (e.g. ``seed``, ``steps``, ``sample_docids_hash``);
    the training settings and library versions are added. Everything is written to a
    temporary sibling first, so a reader sees the old model or the new one, never a mix.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    old = None
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        record = dict(meta) | {"training": getattr(model.config, "byte_lm_training", None), "versions": _versions()}
        (tmp / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            directory.rename(old)
        tmp.rename(directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:  # the rename of the new model failed: put the old one back
                old.rename(directory)


def load_byte_lm(directory: Path):
    """The byte LM saved by ``save_byte_lm`` in eval mode; refuses pickled weights and remote code."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel

    directory = Path(directory)
    if not (directory / "model.safetensors").exists():
        raise NagInputError(f"{directory}: no model.safetensors; a byte LM is loaded from safetensors only "
                            "(re-train it, or save it with save_byte_lm)")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(directory), use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError, SafetensorError) as exc:
        raise NagInputError(f"{directory}: cannot load the byte LM ({exc})") from exc
    if not isinstance(model, GPT2LMHeadModel) or model.config.vocab_size != VOCAB:
        raise NagInputError(f"{directory}: not a byte-level GPT-2 (got {type(model).__name__} with vocabulary "
                            f"{model.config.vocab_size}); point it at a directory written by save_byte_lm")
    return model.eval()


def load_meta(directory: Path) -> dict:
    """The metadata ``save_byte_lm`` wrote beside the weights."""
    path = Path(directory) / META_FILE
    if not path.exists():
        raise NagInputError(f"{path}: missing; the byte LM directory was not written by save_byte_lm")
    return json.loads(path.read_text(encoding="utf-8"))
