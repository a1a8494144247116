"""Locating the projections whose outputs define neuron impact, in any architecture.

Impact of neuron k given input h is |h^T W[:, k]|: the magnitude of the projection's
k-th output. A forward hook on the projection module sees exactly that output, so no
modeling file needs patching, and any ``transformers`` version works.

Each neuron type maps to module-name suffixes per architecture family. GPT-2 fuses
q, k and v into one ``c_attn`` module, so those types take a slice of its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nag_core.errors import NagInputError

# (suffix regex of the module name, which third of a fused qkv output, or None)
_PATTERNS: dict[str, list[tuple[str, int | None]]] = {
    "fwd_up": [
        (r"mlp\.up_proj", None),  # Llama, Qwen2/3, Mistral, SmolLM3, Gemma
        (r"mlp\.c_fc", None),  # GPT-2
        (r"intermediate\.dense", None),  # BERT, MiniLM, RoBERTa
        (r"mlp\.fc1", None),  # Phi, OPT-style
        (r"mlp\.dense_h_to_4h", None),  # GPT-NeoX, Falcon
    ],
    "fwd_down": [
        (r"mlp\.down_proj", None),
        (r"mlp\.c_proj", None),
        (r"layer\.\d+\.output\.dense", None),
        (r"mlp\.fc2", None),
        (r"mlp\.dense_4h_to_h", None),
    ],
    "att_q": [(r"self_attn\.q_proj", None), (r"attention\.self\.query", None), (r"attn\.c_attn", 0)],
    "att_k": [(r"self_attn\.k_proj", None), (r"attention\.self\.key", None), (r"attn\.c_attn", 1)],
    "att_v": [(r"self_attn\.v_proj", None), (r"attention\.self\.value", None), (r"attn\.c_attn", 2)],
    "att_o": [(r"self_attn\.o_proj", None), (r"attention\.output\.dense", None), (r"attn\.c_proj", None)],
}


@dataclass(frozen=True)
class HookSite:
    neuron_type: str
    layer: int
    module_name: str
    fused_part: int | None  # which third of a fused q/k/v output, if any


def find_sites(model, neuron_type: str) -> list[HookSite]:
    """One hook site per layer, in layer order, or a clear error naming the architecture."""
    if neuron_type not in _PATTERNS:
        raise NagInputError(f"unknown neuron type {neuron_type!r}; known: {sorted(_PATTERNS)}")
    names = [name for name, _ in model.named_modules()]
    for pattern, part in _PATTERNS[neuron_type]:
        rx = re.compile(rf"(^|\.){pattern}$")
        matched = [n for n in names if rx.search(n)]
        if matched:
            return [HookSite(neuron_type, i, n, part) for i, n in enumerate(matched)]
    arch = type(model).__name__
    raise NagInputError(
        f"{arch}: no module for neuron type {neuron_type!r}. Looked for names ending in "
        f"{[p for p, _ in _PATTERNS[neuron_type]]}. This architecture is not supported for "
        f"{neuron_type}; choose another neuron type in nag.yaml or open an issue with the model's module names."
    )
