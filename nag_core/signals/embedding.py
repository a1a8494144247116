"""Embedding similarity: cosine of a document's sentence embedding to the target centroid.

A text's embedding is the mean of the model's last hidden states over its non-pad
tokens (sentence-transformers' mean pooling, which all-MiniLM-L6-v2 was trained with),
read with the tokenizer's special tokens ([CLS] ... [SEP]) and truncated to
``max_length`` tokens (120, as NAG reads). With unit vectors e(x),

    c = mean_{t in targets} e(t),      score(d) = e(d) . c / |c|   in [-1, 1].

Documents are sorted by length and batched with right padding; the attention mask
keeps padding out of both attention and the mean, so a text's embedding does not
depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nag_core.extraction import right_pad


def embed(texts: Sequence[str], model, tokenizer, *, max_length: int = 120, batch_size: int = 32,
          add_special_tokens: bool = True) -> np.ndarray:
    """Mean-pooled last hidden states (n, d) float32, not normalised."""
    n = len(texts)
    if n == 0:
        return np.zeros((0, model.config.hidden_size), np.float32)
    ids = tokenizer(list(texts), add_special_tokens=add_special_tokens, truncation=True,
                    max_length=max_length)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    order = sorted(range(n), key=lambda i: (-len(ids[i]), i))
    out = np.zeros((n, model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for lo in range(0, n, batch_size):
            members = order[lo: lo + batch_size]
            input_ids, mask = right_pad([ids[i] for i in members], pad)
            hidden = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float()
            m = mask.to(device, torch.float32).unsqueeze(-1)
            pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
            out[np.asarray(members)] = pooled.cpu().numpy()
    return out


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def cosine_to_centroid(pool_embeddings: np.ndarray, target_embeddings: np.ndarray) -> np.ndarray:
    """Cosine of each pool embedding to the mean unit target embedding, float64 in [-1, 1]."""
    if len(target_embeddings) == 0:
        raise ValueError("embedding needs at least one target text")
    centroid = unit(target_embeddings.astype(np.float64)).mean(axis=0)
    norm = np.linalg.norm(centroid)
    if norm == 0:
        return np.zeros(len(pool_embeddings), np.float64)
    return np.clip(unit(pool_embeddings.astype(np.float64)) @ (centroid / norm), -1.0, 1.0)


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, model=None, tokenizer=None,
          max_length: int = 120, batch_size: int = 32) -> np.ndarray:
    """Cosine to the target centroid; loads the default MiniLM when no model is given."""
    if not target_texts:
        raise ValueError("embedding needs at least one target text")
    if model is None or tokenizer is None:
        from nag_core.signals._model import default_model

        model, tokenizer = default_model()
    kw = dict(max_length=max_length, batch_size=batch_size)
    return cosine_to_centroid(embed(pool_texts, model, tokenizer, **kw), embed(target_texts, model, tokenizer, **kw))
