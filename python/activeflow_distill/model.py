# The llama-family forward pass in PyTorch, step for step as native/model/forward.cpp computes
# it (RMSNorm, RoPE NeoX or GPT-J pairing, GQA, SwiGLU, optional qwen biases / q-k norms), with
# the engine's threshold masks at the four linear-input sites and optional fake quantisation.
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gguf import GGMLQuantizationType as T

from .gguf_model import LINEARS, Config, dequantized, tensor
from .quant import ste_quantize

SITE_INDEX = {"attn_in": 0, "attn_out": 1, "ffn_in": 2, "ffn_out": 3}


class SiteMask(torch.autograd.Function):
    """Forward: keep x where |x| > threshold (strictly), else 0, as Model::site_input.
    Backward: identity (straight-through), so masked inputs still learn."""

    @staticmethod
    def forward(ctx, x, thr):
        return torch.where(x.abs() > thr, x, torch.zeros((), dtype=x.dtype))

    @staticmethod
    def backward(ctx, g):
        return g, None


def act_quant(x: torch.Tensor) -> torch.Tensor:
    """The engine rounds a linear layer's input to 8 bits per 32-block (Q8_1, d = amax/127) before
    the dot products; forward only, gradient straight through."""
    shp = x.shape
    b = x.reshape(*shp[:-1], shp[-1] // 32, 32)
    d = b.abs().amax(-1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    y = (torch.round(b * inv) * d).reshape(shp)  # roundf: half away from zero; ties are rare
    return x + (y - x).detach()


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Weights:
    """The frozen tensors read from the GGUF once (embedding, head, norms, biases); the layers'
    linear weights [out, in] float32 are dequantised per layer on demand, so a model can be built
    (and sharded) one layer at a time."""

    def __init__(self, reader, cfg: Config):
        self.reader = reader

        def t(name, required=True):
            x = tensor(reader, name, required)
            return None if x is None else torch.from_numpy(dequantized(x))

        self.tok_embd = t("token_embd.weight")  # [n_vocab, n_embd]
        out = t("output.weight", False)
        self.output = self.tok_embd if out is None else out  # tied embeddings when absent
        self.output_norm = t("output_norm.weight")
        self.rope_freqs = t("rope_freqs.weight", False)
        self.layers = []
        for il in range(cfg.n_layer):
            p = f"blk.{il}."
            L = {"attn_norm": t(p + "attn_norm.weight"), "ffn_norm": t(p + "ffn_norm.weight")}
            for b in ("attn_q", "attn_k", "attn_v"):
                L[b + ".bias"] = t(p + b + ".bias", False)
            L["attn_q_norm"] = t(p + "attn_q_norm.weight", False)
            L["attn_k_norm"] = t(p + "attn_k_norm.weight", False)
            self.layers.append(L)

    def linears(self, il: int) -> dict[str, torch.Tensor]:
        return {n: torch.from_numpy(dequantized(tensor(self.reader, f"blk.{il}.{n}.weight"))) for n in LINEARS}

    def to(self, device) -> "Weights":
        mv = lambda x: None if x is None else x.to(device)
        self.tok_embd, self.output, self.output_norm, self.rope_freqs = map(mv, (self.tok_embd, self.output, self.output_norm, self.rope_freqs))
        self.layers = [{k: mv(v) for k, v in L.items()} for L in self.layers]
        return self


class Layer(nn.Module):
    """One block's linear weights [out, in] and RMSNorm weights: a module of its own so FSDP can
    shard it and gather it for its forward only."""

    def __init__(self, lin: dict, L: dict, trainable: bool, train_norms: bool):
        super().__init__()
        self.linears = nn.ParameterDict({n: nn.Parameter(lin[n], requires_grad=trainable) for n in LINEARS})
        tn = trainable and train_norms
        self.norms = nn.ParameterDict({n: nn.Parameter(L[n].clone() if tn else L[n], requires_grad=tn) for n in ("attn_norm", "ffn_norm")})

    def forward(self, x: torch.Tensor, m: "Model", il: int) -> torch.Tensor:
        cfg, L = m.cfg, m.w.layers[il]
        B, T_ = x.shape[:2]
        hd = cfg.head_dim
        xn = rms_norm(x, self.norms["attn_norm"], cfg.rms_eps)
        xn = m._site(xn, il, "attn_in")
        q = F.linear(xn, m._q(self.linears["attn_q"]), L["attn_q.bias"])
        k = F.linear(xn, m._q(self.linears["attn_k"]), L["attn_k.bias"])
        v = F.linear(xn, m._q(self.linears["attn_v"]), L["attn_v.bias"])
        q = q.view(B, T_, cfg.n_head, hd)
        k = k.view(B, T_, cfg.n_head_kv, hd)
        v = v.view(B, T_, cfg.n_head_kv, hd)
        if L["attn_q_norm"] is not None:
            q = rms_norm(q, L["attn_q_norm"], cfg.rms_eps)
        if L["attn_k_norm"] is not None:
            k = rms_norm(k, L["attn_k_norm"], cfg.rms_eps)
        q, k = m._rope(q), m._rope(k)
        group = cfg.n_head // cfg.n_head_kv
        # [B, H, T, hd]; query head h reads kv head h // group
        q = q.transpose(1, 2)
        k = k.transpose(1, 2).repeat_interleave(group, dim=1)
        v = v.transpose(1, 2).repeat_interleave(group, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(hd))
        a = a.transpose(1, 2).reshape(B, T_, cfg.n_head * hd)
        a = m._site(a, il, "attn_out")
        x = x + F.linear(a, m._q(self.linears["attn_output"]))
        xn = rms_norm(x, self.norms["ffn_norm"], cfg.rms_eps)
        xn = m._site(xn, il, "ffn_in")
        h = F.silu(F.linear(xn, m._q(self.linears["ffn_gate"]))) * F.linear(xn, m._q(self.linears["ffn_up"]))
        h = m._site(h, il, "ffn_out")
        return x + F.linear(h, m._q(self.linears["ffn_down"]))


class Model(nn.Module):
    def __init__(self, cfg: Config, w: Weights, trainable: bool, qtype: T | None = None, train_norms: bool = False, each_layer=None):
        """each_layer(layer) is called on every Layer as it is built (FSDP shards it there, so the
        whole model is never held unsharded)."""
        super().__init__()
        self.cfg = cfg
        self.qtype = qtype  # fake-quantise linear weights to this type in forward (None: as stored)
        self.thresholds: torch.Tensor | None = None  # [n_layer, 4] or None (dense)
        self.act_quant = False  # emulate the engine's 8-bit activation rounding (parity checks)
        self.w = w
        self.layers = nn.ModuleList()
        for il, L in enumerate(w.layers):
            layer = Layer(w.linears(il), L, trainable, train_norms)
            if each_layer is not None:
                each_layer(layer)
            self.layers.append(layer)
        n_rot = cfg.n_rot
        inv = np.array([cfg.rope_theta ** (-2.0 * i / n_rot) for i in range(n_rot // 2)], dtype=np.float64)
        if w.rope_freqs is not None:
            inv = inv / w.rope_freqs.cpu().numpy().astype(np.float64)
        self.register_buffer("inv_freq", torch.from_numpy(inv.astype(np.float32)), persistent=False)

    def set_thresholds(self, thr: np.ndarray | None) -> None:
        self.thresholds = None if thr is None else torch.from_numpy(np.asarray(thr, dtype=np.float32))

    def _site(self, x: torch.Tensor, layer: int, site: str) -> torch.Tensor:
        if self.thresholds is not None:
            x = SiteMask.apply(x, self.thresholds[layer, SITE_INDEX[site]])
        return act_quant(x) if self.act_quant else x

    def _q(self, w: torch.Tensor) -> torch.Tensor:
        return w if self.qtype is None else ste_quantize(w, self.qtype)

    def _rope(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, T, H, hd]; rotates the first n_rot dims of each head by position.
        cfg = self.cfg
        T_ = x.shape[1]
        pos = torch.arange(T_, dtype=torch.float32, device=x.device)
        ang = pos[:, None] * self.inv_freq[None, :]  # [T, n_rot/2]
        c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
        half = cfg.n_rot // 2
        rot, rest = x[..., : cfg.n_rot], x[..., cfg.n_rot :]
        if cfg.rope_neox:
            a, b = rot[..., :half], rot[..., half:]
            rot = torch.cat([a * c - b * s, a * s + b * c], dim=-1)
        else:
            a, b = rot[..., 0::2], rot[..., 1::2]
            rot = torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)
        return torch.cat([rot, rest], dim=-1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, T] -> logits [B, T, n_vocab] (positions start at 0, causal)."""
        w = self.w
        x = w.tok_embd[ids]  # [B, T, E]
        for il, layer in enumerate(self.layers):
            x = layer(x, self, il)
        return F.linear(rms_norm(x, w.output_norm, self.cfg.rms_eps), w.output)

    def trained_names(self) -> dict[str, str]:
        """state_dict key -> GGUF tensor name of every trained tensor."""
        out = {}
        for il, layer in enumerate(self.layers):
            for n, p in [*layer.linears.items(), *layer.norms.items()]:
                if p.requires_grad:
                    out[f"layers.{il}.{'linears' if n in LINEARS else 'norms'}.{n}"] = f"blk.{il}.{n}.weight"
        return out
