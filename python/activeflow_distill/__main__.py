# python -m activeflow_distill: sparsity-aware self-distillation of a GGUF model. Usually run by
# `activeflow distill`, which prepares the training tokens (self-generated text or --text) and
# starts torchrun for --procs N; torchrun -m activeflow_distill works the same by hand.
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import DistillError
from .parent import watch_parent
from .train import Options, distill


def parse(argv) -> Options:
    d = Options(model="", tokens="", sparsity=0.0, out="")
    ap = argparse.ArgumentParser(
        prog="python -m activeflow_distill",
        description="Distil a GGUF model towards itself dense under the engine's threshold masks and 4-bit fake "
        "quantisation; writes a GGUF of the same architecture and type. Needs <model>.calibration.json "
        "(`activeflow calibrate <model>`) and a token file (`activeflow distill` writes one). "
        "Under torchrun (e.g. torchrun --nproc-per-node 2 -m activeflow_distill ..., or --nnodes/--rdzv-endpoint "
        "across machines, each holding the model, its table and the token file at the same paths) the processes "
        "train one model: each takes --batch / processes windows per step, gloo joins CPU processes and NCCL "
        "GPUs; process 0 alone writes the checkpoint, <out>.curves.json and <out>.",
    )
    ap.add_argument("model", help="source .gguf (llama, qwen2, qwen3; Q4_0, Q4_1, Q8_0, F16 or F32 linear weights)")
    ap.add_argument("--tokens", required=True, help="training token ids: int32 little-endian, as `activeflow distill` caches them")
    ap.add_argument("--sparsity", type=float, required=True, help="sparsity to distil for, in (0, 1)")
    ap.add_argument("--out", required=True, help="distilled .gguf to write (temp file, then rename)")
    ap.add_argument("--steps", type=int, default=d.steps, help="optimizer steps in all, counting those of a resumed checkpoint")
    ap.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per training window")
    ap.add_argument("--batch", type=int, default=d.batch, help="windows per step over all processes (a multiple of their number)")
    ap.add_argument("--accumulate", type=int, default=d.accumulate, help="forwards per process per step, each over its share "
                    "of the batch / this many windows, gradients summed (less memory, the same step)")
    ap.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    ap.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    ap.add_argument("--time-limit", type=float, default=0.0, help="minutes of training at most; the model is written either way")
    ap.add_argument("--checkpoint", default="", help="checkpoint file (defaults to <out>.ckpt)")
    ap.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints (and curve writes)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint (with any number of processes, DDP or FSDP)")
    ap.add_argument("--device", default=d.device, help="torch device: auto (default: cuda when torch sees a GPU, else cpu), cpu, cuda, "
                    "cuda:1; under torchrun cuda means each process's cuda:<LOCAL_RANK>")
    ap.add_argument("--fsdp", action="store_true", help="under torchrun, shard the layers' weights, gradients and Adam state over "
                    "the processes (FSDP) instead of a whole copy in each (DDP), for models that do not fit one device")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's default, which follows OMP_NUM_THREADS; torchrun sets 1 when it is unset)")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the window order (a resumed run must keep it)")
    ap.add_argument("--calibration", default="", help="calibration table (defaults to <model>.calibration.json)")
    ap.add_argument("--train-norms", action="store_true", help="also train the RMSNorm weights")
    ap.add_argument("--val-windows", type=int, default=d.val_windows, help="windows held out to measure KL before and after")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    a = ap.parse_args(argv)
    if not (0 < a.sparsity < 1):
        ap.error(f"--sparsity must be in (0, 1), got {a.sparsity}")
    if a.steps < 0 or a.seq_len < 2 or a.batch < 1 or a.accumulate < 1 or a.lr <= 0 or a.checkpoint_every < 1:
        ap.error("--steps >= 0, --seq-len >= 2, --batch >= 1, --accumulate >= 1, --lr > 0 and --checkpoint-every >= 1 are required")
    return Options(
        model=a.model, tokens=a.tokens, sparsity=a.sparsity, out=a.out, steps=a.steps, seq_len=a.seq_len, batch=a.batch, accumulate=a.accumulate,
        lr=a.lr, warmup=a.warmup, time_limit=a.time_limit, checkpoint=a.checkpoint, checkpoint_every=a.checkpoint_every,
        resume=a.resume, device=a.device, fsdp=a.fsdp, threads=a.threads, seed=a.seed, calibration=a.calibration,
        train_norms=a.train_norms, val_windows=a.val_windows, progress=not a.no_progress,
    ), a.json


def main(argv=None) -> int:
    o, as_json = parse(argv)
    watch_parent()
    try:
        r = distill(o)
    except DistillError as e:
        # Under torchrun a failure may be one process's own (a missing file on its machine).
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0 or not e.everywhere:
            print(f"error: {e}" if rank == 0 else f"error (process {rank}): {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            try:
                print("stopped; resume with --resume", file=sys.stderr)
            except OSError:
                pass  # the parent and its pipe are gone
        return 130
    if not r:
        return 0  # not process 0: it reports
    if as_json:
        print(json.dumps(r))
    else:
        print(f"val KL {r['val_kl_before']:.4f} -> {r['val_kl_after']:.4f} after {r['steps']} steps ({r['stopped_by']}); wrote {r['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
