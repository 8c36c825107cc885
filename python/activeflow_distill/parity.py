# Parity of the PyTorch model with our engine: given token ids and the engine's teacher-forced
# logits for them (written by test/distill.test.ts), prints top-1 agreement and KL(engine || torch).
#   python -m activeflow_distill.parity --model m.gguf --ids x.ids --logits x.logits [--sparsity s]
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DistillError
from .gguf_model import open_gguf, read_config
from .model import SITE_INDEX, Model, Weights
from .thresholds import load_table, thresholds_for


def compare(model_path: str, ids: np.ndarray, engine_logits: np.ndarray, sparsity: float, calibration: str | None = None) -> dict:
    reader = open_gguf(model_path)
    cfg = read_config(reader)
    m = Model(cfg, Weights(reader, cfg), trainable=False)
    if sparsity > 0:
        m.set_thresholds(thresholds_for(load_table(model_path, calibration), sparsity))
    # Kept / seen per site over all layers, as the engine's siteCounts.
    kept, seen = [0] * 4, [0] * 4
    plain = m._site

    def counting(x, il, site):
        y = plain(x, il, site)
        i = SITE_INDEX[site]
        kept[i] += int((y != 0).sum()) if m.thresholds is not None else y.numel()
        seen[i] += y.numel()
        return y

    m._site = counting
    with torch.no_grad():
        ours = m(torch.from_numpy(ids.astype(np.int64))[None])[0]
    ref = torch.from_numpy(engine_logits.reshape(len(ids), cfg.n_vocab))
    lp_ref, lp = F.log_softmax(ref.double(), -1), F.log_softmax(ours.double(), -1)
    kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)
    top1 = (ref.argmax(-1) == ours.argmax(-1)).double()
    return {
        "tokens": int(len(ids)),
        "sparsity": sparsity,
        "top1_agreement": float(top1.mean()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "max_abs_logit_diff": float((ref - ours).abs().max()),
        "kept_fraction": [k / max(1, n) for k, n in zip(kept, seen)],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m activeflow_distill.parity", description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="int32 token ids (little-endian)")
    ap.add_argument("--logits", required=True, help="float32 [tokens, n_vocab] engine logits")
    ap.add_argument("--sparsity", type=float, default=0.0)
    ap.add_argument("--calibration", help="calibration table (defaults to <model>.calibration.json)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        ids = np.fromfile(a.ids, dtype="<i4")
        logits = np.fromfile(a.logits, dtype="<f4")
        print(json.dumps(compare(a.model, ids, logits, a.sparsity, a.calibration)))
        return 0
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
