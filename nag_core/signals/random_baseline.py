"""Random selection: seeded uniform scores in [0, 1).

Ranking by these scores is a uniformly random ordering of the pool, so a budget of
``k`` documents draws ``k`` without replacement; the expected share of any domain
in the selection is that domain's share of the pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def score(pool_texts: Sequence[str], target_texts: Sequence[str] = (), *, seed: int = 0) -> np.ndarray:
    """Uniform scores; the same seed and pool size always give the same scores."""
    return np.random.default_rng(seed).random(len(pool_texts))
