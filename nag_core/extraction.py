"""Neuron-Activated Graph extraction: per document, the top-K neurons of every layer.

For a projection W and a document's hidden states h_t (t over its non-pad tokens), the
impact of neuron k is mean_t |h_t^T W[:, k]| (paper §2.2). The K most impactful
neurons per layer, in descending order, form the document's NAG.

Tokenisation follows the reference: no special tokens, truncation to ``max_length``.
Batches are padded on the right, so a causal model's real tokens keep positions
0..n-1 and never see padding; together with the attention mask this makes a document's
features independent of what it is batched with. Documents are tokenised in blocks of
``TOKENIZE_BLOCK`` and sorted by length within a block before batching, which cuts
padding while keeping memory flat for any shard size.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nag_core.errors import NagInputError
from nag_core.hooks import HookSite, find_sites

Progress = Callable[[str], None]
MAX_UINT16_NEURONS = 1 << 16
TOKENIZE_BLOCK = 4096  # documents tokenised and length-sorted together


@dataclass
class Features:
    """Top-K neurons per layer: ``indices`` (n, L, K) uint16, ``values`` (n, L, K) float32."""

    indices: np.ndarray
    values: np.ndarray

    @property
    def num_layers(self) -> int:
        return int(self.indices.shape[1])


@dataclass
class ExtractionStats:
    documents: int
    tokens: int
    padded_tokens: int
    seconds: float


class Extractor:
    """Holds one loaded model and its hooks; call ``extract`` for any number of texts."""

    def __init__(self, model, tokenizer, *, neuron_types: Sequence[str], top_k: int, max_length: int, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.top_k = top_k
        self.max_length = max_length
        self.batch_size = batch_size
        self.neuron_types = tuple(neuron_types)
        self.device = next(model.parameters()).device
        self.sites: dict[str, list[HookSite]] = {nt: find_sites(model, nt) for nt in self.neuron_types}
        self.num_layers = len(self.sites[self.neuron_types[0]])
        modules = dict(model.named_modules())
        self._widths: dict[str, int] = {}
        for nt, sites in self.sites.items():
            if len(sites) != self.num_layers:
                raise NagInputError(f"{type(model).__name__}: found {len(sites)} {nt} modules but {self.num_layers} layers for {self.neuron_types[0]}")
            width = _out_width(modules[sites[0].module_name], sites[0].fused_part)
            if width > MAX_UINT16_NEURONS:
                raise NagInputError(f"{type(model).__name__}: {nt} has {width} neurons per layer; the cache stores indices as uint16 (max {MAX_UINT16_NEURONS}).")
            if width < top_k:
                raise NagInputError(f"nag.yaml: top_k={top_k} exceeds the {width} {nt} neurons per layer of this model")
            self._widths[nt] = width
        self._modules = modules
        self._mask: torch.Tensor | None = None
        self._denom: torch.Tensor | None = None
        self._out: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        # A KV cache is wasted memory for a single forward pass.
        accepts = inspect.signature(model.forward).parameters
        self._forward_kwargs = {"use_cache": False} if "use_cache" in accepts else {}
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    def width(self, neuron_type: str) -> int:
        return self._widths[neuron_type]

    def _hook(self, site: HookSite):
        def fn(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if site.fused_part is not None:
                out = out.chunk(3, dim=-1)[site.fused_part]
            impact = torch.einsum("btn,bt->bn", out.float().abs(), self._mask) / self._denom
            vals, idx = torch.topk(impact, self.top_k, dim=-1, largest=True, sorted=True)
            self._out[(site.neuron_type, site.layer)] = (idx, vals)

        return fn

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:  # a shard whose documents were all deduplicated away
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=self.max_length)
        return enc["input_ids"]

    def extract(self, texts: Sequence[str], progress: Progress | None = None) -> tuple[dict[str, Features], ExtractionStats]:
        start = time.perf_counter()
        n = len(texts)
        L, K = self.num_layers, self.top_k
        result = {nt: Features(np.zeros((n, L, K), np.uint16), np.zeros((n, L, K), np.float32)) for nt in self.neuron_types}
        handles = [self._modules[s.module_name].register_forward_hook(self._hook(s))
                   for sites in self.sites.values() for s in sites]
        stats = ExtractionStats(n, 0, 0, 0.0)
        next_report = 0
        try:
            with torch.inference_mode():
                # Token ids live only for one block, so memory does not grow with the shard.
                for block in range(0, n, TOKENIZE_BLOCK):
                    self._extract_block(texts, block, min(n, block + TOKENIZE_BLOCK), result, stats)
                    done = min(n, block + TOKENIZE_BLOCK)
                    if progress and (done >= next_report or done == n):
                        progress(f"extracted {done}/{n} documents ({stats.tokens} tokens)")
                        next_report = done + max(TOKENIZE_BLOCK, n // 10)
        finally:
            for h in handles:
                h.remove()
            self._mask = self._denom = None
        stats.seconds = time.perf_counter() - start
        return result, stats

    def _extract_block(self, texts: Sequence[str], lo: int, hi: int, result: dict[str, Features],
                       stats: ExtractionStats) -> None:
        ids = self.tokenize(texts[lo:hi])
        order = sorted(range(hi - lo), key=lambda i: (-len(ids[i]), i))  # longest first: least padding
        for b in range(0, len(order), self.batch_size):
            members = order[b: b + self.batch_size]
            input_ids, mask = self._pad([ids[i] for i in members])
            stats.tokens += int(mask.sum())
            stats.padded_tokens += mask.numel()
            self._mask = mask.to(self.device, torch.float32)
            self._denom = self._mask.sum(dim=1, keepdim=True).clamp_min(1.0)
            self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **self._forward_kwargs)
            rows = lo + np.asarray(members)
            for (nt, layer), (idx, vals) in self._out.items():
                result[nt].indices[rows, layer] = idx.cpu().numpy().astype(np.uint16)
                result[nt].values[rows, layer] = vals.float().cpu().numpy()
            self._out.clear()

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return right_pad(seqs, self.pad_id)


def right_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the right so real tokens keep positions 0..n-1."""
    width = max(1, max(len(s) for s in seqs))
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if s:
            input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
    return input_ids, mask


def _out_width(module, fused_part: int | None) -> int:
    if hasattr(module, "out_features"):
        width = module.out_features
    elif hasattr(module, "nf"):  # GPT-2 Conv1D
        width = module.nf
    else:
        width = module.weight.shape[0]
    return width // 3 if fused_part is not None else width
