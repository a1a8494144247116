"""The default frozen model for the model-based scorers, loaded on demand."""

from __future__ import annotations


def default_model(device: str = "auto"):
    """(model, tokenizer) of the built-in MiniLM-L6 checkpoint."""
    from nag_core.models import default_model_path, load_model, model_ref
    from nag_core.settings import DEFAULT_MODEL_NAME

    return load_model(model_ref(DEFAULT_MODEL_NAME, default_model_path()), device)
