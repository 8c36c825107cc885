#!/usr/bin/env python3
"""Writes test/data/kernel-golden.json: GGML bit-layout golden cases from gguf-py (the
numpy port of ggml's quantisers), so our blocks are checked against ggml's code and not
only against our own quantiser. Run: python3 test/data/make-kernel-golden.py"""
import json
import os

import numpy as np
from gguf.quants import dequantize, quantize
from gguf.constants import GGMLQuantizationType as T

rng = np.random.default_rng(1234)
cases = []

# Dequantisation of random block bytes (with sane f16 scales) for every quantised type.
layouts = {  # type: (block bytes, block elements, offsets of f16 scales)
    T.Q4_0: (18, 32, [0]),
    T.Q4_1: (20, 32, [0, 2]),
    T.Q8_0: (34, 32, [0]),
    T.Q4_K: (144, 256, [0, 2]),
    T.Q5_K: (176, 256, [0, 2]),
    T.Q6_K: (210, 256, [208]),
}
for qt, (bb, be, scale_offsets) in layouts.items():
    nblk = 3
    raw = bytearray(rng.integers(0, 256, size=bb * nblk, dtype=np.uint8).tobytes())
    for b in range(nblk):
        for off in scale_offsets:
            v = np.float16(rng.uniform(0.001, 0.05) * (1 if off != 2 or qt != T.Q4_1 else -20))
            raw[b * bb + off:b * bb + off + 2] = v.tobytes()
    deq = dequantize(np.frombuffer(bytes(raw), dtype=np.uint8), qt).astype(np.float32)
    cases.append({"kind": "dequantize", "type": int(qt), "n": be * nblk, "bytes": bytes(raw).hex(),
                  "values": [float(x) for x in deq.reshape(-1)]})

# Quantisation of floats by ggml's reference quantisers (the types gguf-py can quantise).
for qt in (T.Q4_0, T.Q4_1, T.Q8_0):
    x = (rng.standard_normal(128) * 0.7).astype(np.float32)
    qb = quantize(x.reshape(1, -1), qt)
    cases.append({"kind": "quantize", "type": int(qt), "n": 128, "x": [float(v) for v in x],
                  "bytes": qb.tobytes().hex()})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel-golden.json")
with open(out, "w") as f:
    json.dump({"generator": "test/data/make-kernel-golden.py (gguf-py)", "cases": cases}, f)
print(f"wrote {out}: {len(cases)} cases")
