"""The heat rule: a heat signature is a thermal observation, never guessed from how a site looks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def heat_where_seen(probs: np.ndarray, dt_max_k: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """``probs`` with heat_signature set to NaN for windows without thermal data.

    A heat signature is a thermal observation: without thermal the model could only guess it from how a
    farm looks, and a guess is not reported (the window's other classes still are).
    """
    if "heat_signature" not in classes:
        return probs
    out = np.array(probs, dtype=np.float32, copy=True)
    out[~np.isfinite(np.asarray(dt_max_k, dtype=float)), list(classes).index("heat_signature")] = np.nan
    return out
