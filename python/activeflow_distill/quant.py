# Fake quantisation (quantisation-aware training): the forward pass sees weights rounded exactly
# as gguf-py's quantiser (= ggml's reference) would store them; gradients pass straight through.
from __future__ import annotations

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T

BLOCK = 32


def _half(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(torch.float32)


def _q4_0(w: torch.Tensor) -> torch.Tensor:
    # Block [.., 32]: d = (signed value of largest magnitude) / -8, q = clip(trunc(x/d + 8.5), 0, 15).
    imax = w.abs().argmax(dim=-1, keepdim=True)
    mx = torch.gather(w, -1, imax)
    d = mx / -8
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc(w * inv + 8.5).clamp(0, 15)
    return (q - 8) * _half(d)


def _q4_1(w: torch.Tensor) -> torch.Tensor:
    # Block [.., 32]: d = (max - min) / 15, q = clip(trunc((x - min)/d + 0.5), 0, 15), x' = q d + min (d, min in f16).
    mx = w.amax(dim=-1, keepdim=True)
    mn = w.amin(dim=-1, keepdim=True)
    d = (mx - mn) / 15
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc((w - mn) * inv + 0.5).clamp(0, 15)
    return q * _half(d) + _half(mn)


def _q8_0(w: torch.Tensor) -> torch.Tensor:
    d = w.abs().amax(dim=-1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    x = w * inv
    q = torch.sign(x) * torch.floor(x.abs() + 0.5)  # round half away from zero, as np_roundf
    return q * _half(d)


def fake_quantize(w: torch.Tensor, qtype: T) -> torch.Tensor:
    """w [out, in] -> the values the GGUF would hold after quantising w to qtype (no gradient path)."""
    if qtype == T.F32:
        return w
    if qtype == T.F16:
        return _half(w)
    fn = {T.Q4_0: _q4_0, T.Q4_1: _q4_1, T.Q8_0: _q8_0}[qtype]
    out_dim, in_dim = w.shape
    return fn(w.reshape(out_dim, in_dim // BLOCK, BLOCK)).reshape(out_dim, in_dim)


def ste_quantize(w: torch.Tensor, qtype: T) -> torch.Tensor:
    """Forward: fake_quantize(w); backward: identity (straight-through estimator)."""
    if qtype == T.F32:
        return w
    with torch.no_grad():
        delta = fake_quantize(w, qtype) - w
    return w + delta


def quantize_bytes(w: np.ndarray, qtype: T) -> np.ndarray:
    """float32 [out, in] -> the GGUF tensor bytes [out, row_bytes] (gguf-py's quantiser)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    if qtype == T.F32:
        return w.view(np.uint8)
    if qtype == T.F16:
        return w.astype(np.float16).view(np.uint8)
    return gguf.quants.quantize(w, qtype)
