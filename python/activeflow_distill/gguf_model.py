# Reads a llama-family GGUF with the gguf package: hyper-parameters as src/model/config.ts reads
# them, and the weights dequantised to float32 in torch's [out, in] layout.
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

from .errors import DistillError

ARCHITECTURES = ("llama", "qwen2", "qwen3")
# Linear weights the tool trains, per layer, with the site whose input they read.
LINEARS = {
    "attn_q": "attn_in",
    "attn_k": "attn_in",
    "attn_v": "attn_in",
    "attn_output": "attn_out",
    "ffn_gate": "ffn_in",
    "ffn_up": "ffn_in",
    "ffn_down": "ffn_out",
}
TRAINABLE_TYPES = (T.Q4_0, T.Q4_1, T.Q8_0, T.F16, T.F32)


@dataclass
class Config:
    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_rot: int
    rope_theta: float
    rms_eps: float
    rope_neox: bool
    trained_context: int


def _field(reader: gguf.GGUFReader, key: str, fallback=None):
    f = reader.fields.get(key)
    if f is None:
        if fallback is None:
            raise DistillError(f"{reader.path}: metadata key {key} is missing")
        return fallback
    return f.contents()


def read_config(reader: gguf.GGUFReader) -> Config:
    path = reader.path
    arch = _field(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise DistillError(f'{path}: architecture "{arch}" is not supported (supported: {", ".join(ARCHITECTURES)})')
    k = lambda s: f"{arch}.{s}"
    n_embd = int(_field(reader, k("embedding_length")))
    n_head = int(_field(reader, k("attention.head_count")))
    n_head_kv = int(_field(reader, k("attention.head_count_kv"), n_head))
    head_dim = int(_field(reader, k("attention.key_length"), n_embd // n_head))
    scaling = reader.fields.get(k("rope.scaling.type"))
    if scaling is not None and scaling.contents() not in ("none", "llama3"):
        raise DistillError(f'{path}: rope scaling "{scaling.contents()}" is not supported')
    embd = tensor(reader, "token_embd.weight")
    return Config(
        arch=arch,
        n_layer=int(_field(reader, k("block_count"))),
        n_embd=n_embd,
        n_ff=int(_field(reader, k("feed_forward_length"))),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_vocab=int(_field(reader, k("vocab_size"), int(embd.shape[1]))),
        n_rot=int(_field(reader, k("rope.dimension_count"), head_dim)),
        rope_theta=float(_field(reader, k("rope.freq_base"), 10000.0)),
        rms_eps=float(_field(reader, k("attention.layer_norm_rms_epsilon"), 1e-5)),
        rope_neox=arch != "llama",
        trained_context=int(_field(reader, k("context_length"), 2048)),
    )


def open_gguf(path: str) -> gguf.GGUFReader:
    if not os.path.isfile(path):
        raise DistillError(f"model file not found: {path}")
    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as e:  # gguf raises ValueError/struct errors on bad files
        raise DistillError(f"{path}: not a readable GGUF file ({e})") from e
    reader.path = path  # for error messages
    return reader


def tensor(reader: gguf.GGUFReader, name: str, required: bool = True):
    for t in reader.tensors:
        if t.name == name:
            return t
    if required:
        raise DistillError(f"{reader.path}: model has no tensor {name}")
    return None


def dequantized(t) -> np.ndarray:
    """float32 [ne1, ne0] (torch's [out, in]) of a 2-D tensor, or [ne0] of a 1-D one."""
    a = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
    # F32 tensors come back as views of the read-only map; torch wants writable memory.
    return a if a.flags.writeable else a.copy()


def weight_type(reader: gguf.GGUFReader) -> T:
    """The type of the layers' linear weights; every one must share it (as our converter assumes)."""
    types = {t.tensor_type for t in reader.tensors if t.name.startswith("blk.") and t.name.rsplit(".", 2)[-2] in LINEARS}
    if len(types) != 1:
        raise DistillError(f"{reader.path}: linear weights mix types {sorted(x.name for x in types)}; distillation needs one type")
    wt = types.pop()
    if wt not in TRAINABLE_TYPES:
        raise DistillError(
            f"{reader.path}: weight type {wt.name} is not supported for distillation (supported: {', '.join(x.name for x in TRAINABLE_TYPES)})"
        )
    return wt
