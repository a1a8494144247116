"""LESS-style gradient influence: how much training on a document would move the target's loss.

LESS (Xia et al., 2024, §2-3) scores a candidate d for a target set T by the cosine between
d's loss gradient and the target's, both randomly projected to a few thousand dimensions
(a first-order Taylor step: a step on d lowers T's loss by about eta <g_d, g_T>). This
module is the same estimate with two simplifications, both to stay cheap on a CPU with
the small byte LM of ``causal_lm``:

* plain gradients of the document's mean per-byte NLL (no Adam preconditioning, no
  LoRA warm-up, one checkpoint instead of several);
* only a small parameter subset: by default the **last transformer block's MLP**
  (``c_fc`` and ``c_proj`` weights and biases) **and the final layer norm** ``ln_f``,
  131,968 parameters for d_model = 128. Any other subset: ``param_filter(name) -> bool``
  over ``model.named_parameters()`` names.

A document's feature is

    phi(d) = R^T g_d / ||R^T g_d||,   g_d = grad_theta (1/(n-1)) sum_t -ln p(b_t | b_<t),

with R a P x dim Rademacher matrix (entries +-1, the scale cancels in the normalisation),
generated in row chunks of ``CHUNK_ROWS`` from ``numpy.random.default_rng([seed, chunk])``:
any chunk can be rebuilt alone, so memory stays at one chunk (CHUNK_ROWS x dim float32,
32 MiB at dim 2048) plus one batch of gradients, and the same seed gives the same R in
every process. By the Johnson-Lindenstrauss lemma, cosines are preserved within
~ +-1/sqrt(dim) (about 0.02 at dim 2048).

Each document's gradient comes from its own forward and backward pass (its byte windows
alone), so it does not depend on what else is scored. A text of fewer than 2 bytes has no
loss, and its feature is the zero vector (influence 0).

``gradient_influence`` is cos(phi(d), mean_T phi / ||mean_T phi||).

Cost, measured on this project's machine (AMD EPYC, 2 cores shared with other jobs, torch
on one thread), byte LM d_model 128, 2 layers, context 128, max_bytes 256, dim 2048,
batch_size 128: about 38 ms per document, half the forward and backward pass, half the
projection (generating R once per batch, 1.3 s, and the (128 x 131,968) @ (131,968 x 2048)
product). Larger batches amortise R further; memory is batch_size x P x 4 bytes (68 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from nag_core.errors import NagInputError
from nag_core.signals.perplexity import byte_context, byte_windows, window_nll

CHUNK_ROWS = 4096  # projection rows generated at once; fixed, so R never depends on the batch


def default_param_filter(model) -> Callable[[str], bool]:
    """Parameters of the last block's MLP and the final layer norm (GPT-2 names)."""
    last = int(model.config.n_layer) - 1
    prefixes = (f"transformer.h.{last}.mlp.", "transformer.ln_f.")
    return lambda name: name.startswith(prefixes)


def selected_parameters(model, param_filter: Callable[[str], bool] | None = None) -> list[tuple[str, torch.nn.Parameter]]:
    keep = param_filter or default_param_filter(model)
    chosen = [(n, p) for n, p in model.named_parameters() if keep(n)]
    if not chosen:
        raise NagInputError(f"gradient features: no parameter of {type(model).__name__} matches the parameter filter; "
                            "pass param_filter=lambda name: ... naming some of model.named_parameters()")
    return chosen


def projection_chunk(seed: int, chunk: int, rows: int, dim: int) -> torch.Tensor:
    """Rows [chunk * CHUNK_ROWS, + rows) of the +-1 projection R, float32."""
    rng = np.random.default_rng([seed, chunk])
    bits = np.unpackbits(np.frombuffer(rng.bytes((rows * dim + 7) // 8), np.uint8))[: rows * dim]
    return torch.from_numpy(bits.reshape(rows, dim)).float().mul_(2.0).sub_(1.0)


def project(grads: torch.Tensor, seed: int, dim: int) -> torch.Tensor:
    """grads (B, P) @ R (P, dim), R rebuilt chunk by chunk."""
    out = torch.zeros(grads.shape[0], dim, dtype=torch.float32)
    for c, lo in enumerate(range(0, grads.shape[1], CHUNK_ROWS)):
        hi = min(grads.shape[1], lo + CHUNK_ROWS)
        out += grads[:, lo:hi] @ projection_chunk(seed, c, hi - lo, dim)
    return out


def _document_gradient(model, params: list[torch.nn.Parameter], windows: list[list[int]]) -> torch.Tensor:
    nll, count = window_nll(model, windows, 0)
    loss = nll.sum() / count.sum()
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.reshape(-1) for g in grads]).float()


def gradient_features(model, texts: Sequence[str], *, dim: int = 2048, seed: int = 0, max_bytes: int = 256,
                      param_filter: Callable[[str], bool] | None = None, batch_size: int = 128) -> np.ndarray:
    """Unit-norm projected gradients (n, dim) float32 of each text's loss under the byte LM ``model``.

    ``batch_size`` documents' gradients are projected together, so each projection chunk
    is generated once per batch; it changes speed and memory, not the values.
    """
    if dim < 1 or batch_size < 1:
        raise NagInputError(f"gradient features: dim and batch_size must be >= 1, got dim={dim}, batch_size={batch_size}")
    if max_bytes < 2:
        raise NagInputError(f"gradient features: max_bytes must be >= 2, got {max_bytes}")
    if model.config.vocab_size != 256:
        raise NagInputError(f"gradient features need a byte LM (vocabulary 256), got vocabulary {model.config.vocab_size}")
    chosen = selected_parameters(model, param_filter)
    params = [p for _, p in chosen]
    chosen_ids = {id(p) for p in params}
    flags = {id(p): p.requires_grad for p in model.parameters()}
    context = byte_context(model, max_bytes)
    out = np.zeros((len(texts), dim), np.float32)
    was_training = model.training
    model.eval()
    try:
        for p in model.parameters():  # gradients for the subset only: the rest of the graph is not kept
            p.requires_grad_(id(p) in chosen_ids)
        for lo in range(0, len(texts), batch_size):
            rows, grads = [], []
            for i in range(lo, min(len(texts), lo + batch_size)):
                windows = byte_windows(texts[i], max_bytes, context)
                if windows:
                    rows.append(i)
                    grads.append(_document_gradient(model, params, windows))
            if not rows:
                continue
            with torch.no_grad():
                z = project(torch.stack(grads), seed, dim)
                z /= z.norm(dim=1, keepdim=True).clamp_min(1e-30)
            out[rows] = z.numpy()
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
        model.train(was_training)
    return out


def gradient_influence(pool_features: np.ndarray, target_features: np.ndarray) -> np.ndarray:
    """Cosine of each (unit-norm) pool feature to the normalised mean target feature, float64."""
    pool = np.asarray(pool_features, np.float64)
    target = np.asarray(target_features, np.float64)
    if target.ndim != 2 or target.shape[0] == 0:
        raise NagInputError("gradient influence needs at least one target feature row")
    if pool.ndim != 2 or pool.shape[1] != target.shape[1]:
        raise NagInputError(f"gradient influence: pool features {pool.shape} and target features {target.shape} "
                            "must be (n, dim) with the same dim (same seed and dim for both)")
    mean = target.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise NagInputError("gradient influence: the target features average to zero (every target text shorter "
                            "than 2 bytes?); give target texts with content")
    norms = np.linalg.norm(pool, axis=1)
    return np.where(norms > 0, pool @ (mean / norm) / np.where(norms > 0, norms, 1.0), 0.0)
