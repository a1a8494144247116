"""A cheap scorer distilled from an expensive one, for pools too big to score whole.

BETR (Mizrahi et al., 2025) and PreSelect (Shum et al., 2025) both score a sample of the
pool with the costly signal and train a fast text model to reproduce it on every
document. Here: score a seeded sample (``sample_indices``) with any signal (NAG
contrastive, perplexity, gradient influence), fit a linear model on hashed word n-grams,
and score the whole pool at tokenizer speed with no neural network.

Model. x(d) = l2-normalised counts of d's word n-grams (``ngram_range``, tokens are runs of
word characters or of other non-space characters, lower-cased), hashed into
``n_features`` buckets (scikit-learn's ``HashingVectorizer``, MurmurHash3: the same bucket
in every process). The fit is ridge regression on the expensive scores s,

    w, b = argmin_{w,b} sum_i (w . x_i + b - s_i)^2 + alpha ||w||^2.

Why these choices:

* raw scores as labels (the default) rather than their quantiles (``labels="rank"``,
  y_i = rank(s_i) / (m - 1), ties at their mean rank): a budget keeps the top of the
  ranking, and the raw contrastive log ratios put their spread in the top tail, while
  quantiles spend as much of the fit on the undifferentiated middle. Chosen on the dev
  targets (``benchmarks/results/distilled_dev.md``: mean domain share 0.660 raw vs 0.555
  rank), never on the reported ones;
* ridge is a convex fit with one parameter and a deterministic solver, so the same sample
  gives the same scorer; a top-vs-rest classifier (PreSelect's fastText) would need a
  threshold and discards the order inside each class, which a budget cut uses.

A document's score is w . x(d) + b, higher = ranked higher like the signal it imitates.

Storage. ``to_bytes`` writes an ``.npz`` of plain arrays (the nonzero coefficients' bucket
indices and values, the intercept, the settings as UTF-8 JSON) and ``from_bytes`` reads it
with ``allow_pickle=False``: loading a scorer never runs code.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nag_core.errors import NagInputError

FORMAT = "nag-distilled-1"
TOKEN_PATTERN = r"(?u)\w+|[^\w\s]+"


def sample_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """round(n * fraction) distinct positions in [0, n) (at least 1 when n > 0), seeded, sorted."""
    if not 0 < fraction <= 1:
        raise NagInputError(f"distilled scorer: sample fraction must be in (0, 1], got {fraction}")
    if n < 0:
        raise NagInputError(f"distilled scorer: pool size must be >= 0, got {n}")
    k = min(n, max(1, round(n * fraction))) if n else 0
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)).astype(np.int64)


def _vectorizer(settings: dict):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=settings["n_features"], ngram_range=tuple(settings["ngram_range"]),
                             token_pattern=settings["token_pattern"], lowercase=True, alternate_sign=False,
                             norm="l2", dtype=np.float64)


def _quantiles(scores: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    m = scores.size
    return (rankdata(scores, method="average") - 1.0) / max(1, m - 1)


@dataclass
class DistilledScorer:
    """w . x(d) + b over hashed n-grams; ``settings`` fix the features, so they travel with w."""

    indices: np.ndarray  # (nnz,) int64 buckets with a nonzero weight
    values: np.ndarray  # (nnz,) float64 weights
    intercept: float
    settings: dict = field(default_factory=dict)

    def score(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """Scores (float64, len(texts)); texts with no n-gram score the intercept."""
        vec = _vectorizer(self.settings)
        w = np.zeros(self.settings["n_features"], np.float64)
        w[self.indices] = self.values
        texts = list(texts)
        out = np.full(len(texts), self.intercept, np.float64)
        for lo in range(0, len(texts), batch_size):  # bounded memory for any number of texts
            out[lo: lo + batch_size] += vec.transform(texts[lo: lo + batch_size]) @ w
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"format": FORMAT, "intercept": self.intercept, "settings": self.settings}, sort_keys=True)
        np.savez_compressed(buf, indices=self.indices.astype(np.int64), values=self.values.astype(np.float64),
                            meta=np.frombuffer(meta.encode("utf-8"), np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DistilledScorer:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode("utf-8"))
                indices, values = z["indices"], z["values"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise NagInputError(f"distilled scorer: not a stored scorer ({exc}); re-fit it with fit_distilled") from exc
        if meta.get("format") != FORMAT:
            raise NagInputError(f"distilled scorer: format {meta.get('format')!r}, expected {FORMAT!r}; re-fit it")
        s = meta["settings"]
        if indices.shape != values.shape or indices.size and (indices.min() < 0 or indices.max() >= s["n_features"]):
            raise NagInputError("distilled scorer: coefficient indices do not fit its n_features; the file is damaged")
        return cls(indices.astype(np.int64), values.astype(np.float64), float(meta["intercept"]), s)


def fit_distilled(texts: Sequence[str], scores: np.ndarray, *, seed: int = 0, n_features: int = 2 ** 20,
                  ngram_range: tuple[int, int] = (1, 2), alpha: float = 1.0, labels: str = "raw") -> DistilledScorer:
    """Ridge fit of the expensive ``scores`` (or their quantiles) of ``texts`` on hashed n-grams.

    ``seed`` is recorded only: the solver is deterministic, the sample is the caller's
    (``sample_indices``), and the seed that drew it belongs with the scorer's provenance.
    """
    from sklearn import __version__ as sklearn_version
    from sklearn.linear_model import Ridge

    texts = list(texts)
    scores = np.asarray(scores, np.float64)
    if scores.shape != (len(texts),):
        raise NagInputError(f"distilled scorer: {len(texts)} texts but scores of shape {scores.shape}")
    if len(texts) < 2:
        raise NagInputError("distilled scorer: need at least 2 scored texts to fit")
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise NagInputError(f"distilled scorer: score of text {bad} is {scores[bad]}; give finite scores")
    if labels not in ("rank", "raw"):
        raise NagInputError(f"distilled scorer: labels must be 'rank' or 'raw', got {labels!r}")
    lo, hi = ngram_range
    if not 1 <= lo <= hi or n_features < 1:
        raise NagInputError(f"distilled scorer: need 1 <= ngram_range[0] <= ngram_range[1] and n_features >= 1, "
                            f"got {ngram_range}, {n_features}")
    settings = {"n_features": int(n_features), "ngram_range": [int(lo), int(hi)], "token_pattern": TOKEN_PATTERN,
                "alpha": float(alpha), "labels": labels, "seed": int(seed), "fitted_on": len(texts),
                "sklearn": sklearn_version}
    x = _vectorizer(settings).transform(texts)
    y = _quantiles(scores) if labels == "rank" else scores
    model = Ridge(alpha=alpha, solver="sparse_cg", tol=1e-8).fit(x, y)
    coef = np.asarray(model.coef_, np.float64)
    nz = np.flatnonzero(coef)
    return DistilledScorer(nz.astype(np.int64), coef[nz], float(model.intercept_), settings)
