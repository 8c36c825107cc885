# The distillation loop: the dense teacher (original weights, no masks) and the sparse,
# fake-quantised student see the same windows; the student minimises KL(teacher || student)
# over next-token distributions. Checkpoints are atomic and resumable.
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DistillError
from .gguf_model import open_gguf, read_config, weight_type
from .model import Model, Weights
from .thresholds import load_table, thresholds_for
from .write import write_distilled


@dataclass
class Options:
    model: str
    tokens: str  # int32 token ids, little-endian
    sparsity: float
    out: str
    steps: int = 200
    seq_len: int = 256
    batch: int = 1
    lr: float = 5e-5
    warmup: int = 10
    time_limit: float = 0.0  # minutes of training at most (0: no limit); output is written either way
    checkpoint: str = ""  # defaults to <out>.ckpt
    checkpoint_every: int = 25
    resume: bool = False
    device: str = "cpu"
    threads: int = 0
    seed: int = 1
    calibration: str = ""
    train_norms: bool = False
    val_windows: int = 4
    progress: bool = True


def kl_teacher_student(t_logits: torch.Tensor, s_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(softmax(t) || softmax(s))."""
    lt = F.log_softmax(t_logits.float(), -1)
    ls = F.log_softmax(s_logits.float(), -1)
    return (lt.exp() * (lt - ls)).sum(-1).mean()


def load_windows(path: str, seq_len: int, n_vocab: int) -> torch.Tensor:
    if not os.path.isfile(path):
        raise DistillError(f"token file not found: {path}")
    ids = np.fromfile(path, dtype="<i4")
    n = len(ids) // seq_len
    if n < 2:
        raise DistillError(f"{path}: {len(ids)} tokens make fewer than 2 windows of {seq_len}; give more text or a smaller --seq-len")
    if ids.min() < 0 or ids.max() >= n_vocab:
        raise DistillError(f"{path}: token ids outside the model's vocabulary (0..{n_vocab - 1})")
    return torch.from_numpy(ids[: n * seq_len].astype(np.int64)).view(n, seq_len)


def _save(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def distill(o: Options, log=lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)
    reader = open_gguf(o.model)
    cfg = read_config(reader)
    qtype = weight_type(reader)
    table = load_table(o.model, o.calibration or None)
    if table["nLayer"] != cfg.n_layer:
        raise DistillError(f"{table['path']}: table has {table['nLayer']} layers, the model {cfg.n_layer}; recalibrate")
    thr = thresholds_for(table, o.sparsity)
    windows = load_windows(o.tokens, o.seq_len, cfg.n_vocab)
    n_val = min(o.val_windows, max(1, len(windows) // 8))
    val, train = windows[-n_val:], windows[:-n_val]

    w = Weights(reader, cfg)
    teacher = Model(cfg, w, trainable=False).to(o.device)
    student = Model(cfg, w, trainable=True, qtype=qtype, train_norms=o.train_norms).to(o.device)
    if o.device != "cpu":
        w.to(o.device)
    student.set_thresholds(thr)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=o.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, o.warmup)))
    ckpt_path = o.checkpoint or f"{o.out}.ckpt"
    step = 0
    history: list[dict] = []
    gen = torch.Generator().manual_seed(o.seed)
    order = torch.randperm(len(train), generator=gen)
    if o.resume:
        if not os.path.isfile(ckpt_path):
            raise DistillError(f"--resume: no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path, map_location=o.device, weights_only=False)
        if ck["model"] != os.path.abspath(o.model) or ck["sparsity"] != o.sparsity:
            raise DistillError(f"{ckpt_path}: checkpoint is for {ck['model']} at sparsity {ck['sparsity']}, not this run")
        student.load_state_dict(ck["student"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step, history, order = ck["step"], ck["history"], ck["order"]
        log(f"resumed from {ckpt_path} at step {step}")

    def val_kl() -> float:
        total = 0.0
        with torch.no_grad():
            for i in range(len(val)):
                x = val[i : i + 1].to(o.device)
                total += float(kl_teacher_student(teacher(x), student(x)))
        return total / len(val)

    def checkpoint() -> None:
        _save(ckpt_path, {
            "model": os.path.abspath(o.model), "sparsity": o.sparsity, "step": step, "history": history, "order": order,
            "student": student.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "options": asdict(o),
        })

    kl_before = val_kl() if not history else history[0]["val_kl"]
    if not history:
        history.append({"step": 0, "val_kl": kl_before})
    log(f"distilling {os.path.basename(o.model)} ({cfg.arch}, {cfg.n_layer} layers, {qtype.name}) at sparsity {o.sparsity}: "
        f"{len(train)} training windows of {o.seq_len} tokens, {n_val} held out; val KL {kl_before:.4f}")
    bar = None
    if o.progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=o.steps, initial=step, desc="distill", unit="step", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None
    t0 = time.time()
    losses: list[float] = []
    stopped = "steps"
    while step < o.steps:
        if o.time_limit > 0 and time.time() - t0 > o.time_limit * 60:
            stopped = "time limit"
            break
        idx = [int(order[(step * o.batch + b) % len(train)]) for b in range(o.batch)]
        x = train[idx].to(o.device)
        with torch.no_grad():
            t_logits = teacher(x)
        loss = kl_teacher_student(t_logits, student(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise DistillError(f"loss became {losses[-1]} at step {step}; try a smaller --lr")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(kl=f"{np.mean(losses[-10:]):.4f}")
        if step % o.checkpoint_every == 0:
            history.append({"step": step, "train_kl": float(np.mean(losses[-o.checkpoint_every:]))})
            checkpoint()
    if bar is not None:
        bar.close()
    kl_after = val_kl()
    history.append({"step": step, "val_kl": kl_after})
    checkpoint()
    written = write_distilled(o.model, o.out, student.trained_linears())
    return {
        "model": os.path.abspath(o.model), "out": os.path.abspath(o.out), "checkpoint": os.path.abspath(ckpt_path),
        "arch": cfg.arch, "weight_type": qtype.name, "sparsity": o.sparsity, "steps": step, "stopped_by": stopped,
        "seq_len": o.seq_len, "batch": o.batch, "lr": o.lr, "train_windows": len(train), "val_windows": n_val,
        "val_kl_before": kl_before, "val_kl_after": kl_after, "train_seconds": time.time() - t0,
        "train_kl_first": losses[0] if losses else None, "train_kl_last10": float(np.mean(losses[-10:])) if losses else None,
        "history": history, **written,
    }
