# Writes the distilled GGUF: a byte copy of the source (metadata, tokenizer, untouched tensors)
# with the trained tensors requantised in place to their original type, so sizes and offsets
# stay the same. Temp file then rename.
from __future__ import annotations

import os
import shutil

import numpy as np
import torch
import gguf

from .errors import DistillError
from .gguf_model import open_gguf
from .quant import fake_quantize, quantize_bytes


def write_distilled(src: str, dst: str, trained: dict[str, torch.Tensor]) -> dict:
    """Returns {"tensors": n, "requant_max_abs_diff": max |dequant(stored) - fake_quantize(w)|}."""
    reader = open_gguf(src)
    by_name = {t.name: t for t in reader.tensors}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f"{dst}.tmp-{os.getpid()}"
    worst = 0.0
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "r+b") as f:
            for name, w in trained.items():
                t = by_name.get(name)
                if t is None:
                    raise DistillError(f"{src}: no tensor {name} to write")
                w32 = w.detach().to("cpu", torch.float32).contiguous()
                data = quantize_bytes(w32.numpy(), t.tensor_type)
                if data.nbytes != t.n_bytes:
                    raise DistillError(f"{name}: requantised to {data.nbytes} bytes, the source holds {t.n_bytes}")
                # What the engine will read back must be what the student was trained with.
                back = gguf.quants.dequantize(data, t.tensor_type).reshape(w32.shape)
                fq = fake_quantize(w32, t.tensor_type) if w32.dim() == 2 else w32
                worst = max(worst, float(np.abs(back - fq.numpy()).max()))
                f.seek(t.data_offset)
                f.write(np.ascontiguousarray(data).tobytes())
            f.flush()
            os.fsync(f.fileno())
        check = gguf.GGUFReader(tmp, "r")
        if len(check.tensors) != len(reader.tensors):
            raise DistillError(f"{tmp}: wrote {len(check.tensors)} tensors, expected {len(reader.tensors)}")
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"tensors": len(trained), "requant_max_abs_diff": worst}
