# The model's calibration table (<model>.calibration.json, written by `activeflow calibrate`),
# read as src/sparsity/thresholds.ts reads it, and thresholds for one sparsity as thresholdsFor.
from __future__ import annotations

import json
import os

import numpy as np

from .errors import DistillError

SITES = ("attn_in", "attn_out", "ffn_in", "ffn_out")


def calibration_path(model: str) -> str:
    return f"{model}.calibration.json"


def load_table(model: str, path: str | None = None) -> dict:
    path = path or calibration_path(model)
    if not os.path.isfile(path):
        raise DistillError(
            f"{model}: no calibration table at {path}; run `activeflow calibrate {model}` first (distillation uses its thresholds)"
        )
    with open(path, encoding="utf-8") as f:
        o = json.load(f)
    if o.get("version") != 1:
        raise DistillError(f"{path}: unknown calibration table version {o.get('version')!r}")
    levels, n_layer, th = o.get("levels"), o.get("nLayer"), o.get("thresholds")
    if not isinstance(levels, list) or not isinstance(n_layer, int) or not isinstance(th, list) or len(th) != len(levels):
        raise DistillError(f"{path}: malformed calibration table")
    for i, row in enumerate(th):
        if len(row) != n_layer * len(SITES):
            raise DistillError(f"{path}: thresholds[{i}] must hold {n_layer * len(SITES)} numbers")
    return {"levels": levels, "nLayer": n_layer, "thresholds": [np.asarray(r, dtype=np.float32) for r in th], "path": path}


def thresholds_for(table: dict, s: float) -> np.ndarray:
    """float32 [n_layer, 4]: the table's level s, or log-linear interpolation between its neighbours."""
    if not (0 <= s < 1):
        raise DistillError(f"sparsity must be in [0, 1), got {s}")
    levels, th = table["levels"], table["thresholds"]
    n = table["nLayer"]
    if s in levels:
        return th[levels.index(s)].reshape(n, len(SITES))
    hi = next((i for i, l in enumerate(levels) if l > s), -1)
    if hi <= 0:
        raise DistillError(f"sparsity {s} is outside the calibrated range {levels[0]}..{levels[-1]}")
    lo = hi - 1
    f = (s - levels[lo]) / (levels[hi] - levels[lo])
    out = np.empty_like(th[lo])
    for i in range(out.size):
        x = max(0.0, float(th[lo][i]))
        y = float(th[hi][i])
        out[i] = x * (y / x) ** f if x > 0 and y > 0 else x + (y - x) * f
    # float32 like the engine's Float32Array
    return out.astype(np.float32).reshape(n, len(SITES))
