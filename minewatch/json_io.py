"""Standard JSON from numpy-laden results: NaN and infinity become null, numpy scalars plain numbers.

``json.dumps`` writes ``NaN`` by default, which no strict JSON reader (browsers, jq, QGIS) accepts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from minewatch.atomic import atomic_path


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts (dict keys become str)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted standard JSON, atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n",
                       encoding="utf-8")
    return target
