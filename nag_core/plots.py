"""Small PNG plots for asset metadata, rendered off-screen."""

from __future__ import annotations

import io

import numpy as np


def histogram_png(values: np.ndarray, title: str, xlabel: str, marker: float | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.hist(values, bins=40, color="#4C72B0")
    if marker is not None:
        ax.axvline(marker, color="#C44E52", linestyle="--", label="selection cut-off")
        ax.legend()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
