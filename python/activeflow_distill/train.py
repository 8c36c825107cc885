# The distillation loop: the dense teacher (original weights, no masks) and the sparse,
# fake-quantised student see the same windows; the student minimises KL(teacher || student)
# over next-token distributions. Alone or as one of several torchrun processes: each takes an
# equal share of every global batch (DistributedSampler), gradients are averaged by DDP or
# reduce-scattered by FSDP, and process 0 alone logs and writes checkpoints, curves and the model
# (temp file, then rename). Checkpoints hold full state dicts, so a run resumes with any number
# of processes.
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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.utils.data import DistributedSampler

from .errors import DistillError
from .gguf_model import open_gguf, read_config, weight_type
from .model import Model, Weights
from . import parallel as P
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
    batch: int = 1  # windows per step over all processes (each takes batch / processes)
    accumulate: int = 1  # forwards per process per step (each of batch / processes / accumulate windows)
    lr: float = 5e-5
    warmup: int = 10
    time_limit: float = 0.0  # minutes of training at most (0: no limit); output is written either way
    checkpoint: str = ""  # defaults to <out>.ckpt
    checkpoint_every: int = 25
    resume: bool = False
    device: str = "auto"  # cuda when torch sees a GPU, else cpu
    fsdp: bool = False  # shard the layers over the processes instead of replicating them
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


CHECKPOINT_FORMAT = 2  # 2: full state dicts by parameter name, per-step curve, sampler epochs


def _save_atomic(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def curves_path(out: str) -> str:
    return f"{out}.curves.json"


class Batches:
    """Step s's windows for this process: DistributedSampler's share of epoch s // per_epoch
    (reshuffled each epoch from the seed), so the processes' shares of a step together are the
    batch one process would take, for any number of processes, and a resumed run picks up at
    any step."""

    def __init__(self, n: int, batch: int, par: P.Parallel, seed: int):
        self.per_rank = batch // par.world
        self.sampler = DistributedSampler(range(n), num_replicas=par.world, rank=par.rank, shuffle=True, seed=seed, drop_last=True)
        self.per_epoch = len(self.sampler) // self.per_rank
        self.epoch, self.order = -1, []

    def __call__(self, step: int) -> list[int]:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            self.sampler.set_epoch(epoch)
            self.epoch, self.order = epoch, list(self.sampler)
        return self.order[j * self.per_rank : (j + 1) * self.per_rank]


def distill(o: Options, log=lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    par = P.setup(o.device)
    try:
        return _distill(o, par, log if par.main else lambda s: None)
    finally:
        P.shutdown(par)


def _distill(o: Options, par: P.Parallel, log) -> dict:
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    if o.batch % (par.world * o.accumulate) != 0:
        raise DistillError(
            f"--batch {o.batch} does not split over {par.world} process(es) x --accumulate {o.accumulate}; give a multiple of {par.world * o.accumulate}",
            everywhere=True,
        )
    micro = o.batch // (par.world * o.accumulate)  # windows per forward
    if o.fsdp and not par.distributed:
        raise DistillError("--fsdp shards the model over several processes; start them with torchrun (activeflow distill --procs N)", everywhere=True)
    torch.manual_seed(o.seed)
    dev = par.device
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
    if len(train) < o.batch:
        raise DistillError(f"{o.tokens}: {len(train)} training windows of {o.seq_len} tokens, fewer than --batch {o.batch}; give more text")

    w = Weights(reader, cfg)
    # FSDP shards (and moves to the device) each layer as it is built: no process ever holds
    # the whole teacher or student.
    each = P.shard_layer if o.fsdp else None
    teacher = Model(cfg, w, trainable=False, each_layer=each)
    student = Model(cfg, w, trainable=True, qtype=qtype, train_norms=o.train_norms, each_layer=each)
    w.to(dev)
    student.set_thresholds(thr)
    if o.fsdp:
        P.shard_root(teacher)
    else:
        teacher.to(dev)
        student.to(dev)
    run = P.wrap_student(student, par, o.fsdp)
    params = [p for p in run.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=o.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, o.warmup)))
    ckpt_path = o.checkpoint or f"{o.out}.ckpt"
    if par.main:
        for d in {os.path.dirname(os.path.abspath(p)) for p in (o.out, ckpt_path)}:
            os.makedirs(d, exist_ok=True)
    batches = Batches(len(train), o.batch, par, o.seed)
    step = 0
    history: list[dict] = []  # val KL at the start and end, mean train KL per checkpoint
    curve: list[dict] = []  # every step: global-batch train KL and learning rate
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    if o.resume:
        meta = None
        if par.main:
            if not os.path.isfile(ckpt_path):
                meta = {"error": f"--resume: no checkpoint at {ckpt_path}"}
            else:
                ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
                if ck.get("format") != CHECKPOINT_FORMAT:
                    meta = {"error": f"{ckpt_path}: checkpoint format {ck.get('format', 1)} is not this tool's ({CHECKPOINT_FORMAT}); start again without --resume"}
                elif ck["model"] != os.path.abspath(o.model) or ck["sparsity"] != o.sparsity:
                    meta = {"error": f"{ckpt_path}: checkpoint is for {ck['model']} at sparsity {ck['sparsity']}, not this run"}
                elif (ck["batch"], ck["options"]["seed"]) != (o.batch, o.seed):
                    # Both fix which windows each step takes.
                    meta = {"error": f"{ckpt_path}: checkpoint was trained with --batch {ck['batch']} --seed {ck['options']['seed']}, not --batch {o.batch} --seed {o.seed}"}
                else:
                    meta = {k: ck[k] for k in ("step", "history", "curve", "sched", "world")}
        meta = P.broadcast(meta, par)
        if "error" in meta:
            raise DistillError(meta["error"], everywhere=True)
        load = StateDictOptions(full_state_dict=True, broadcast_from_rank0=par.distributed)
        set_model_state_dict(run, ck["student"] if par.main else {}, options=load)
        set_optimizer_state_dict(run, opt, ck["opt"] if par.main else {}, options=load)
        sched.load_state_dict(meta["sched"])
        step, history, curve = meta["step"], meta["history"], meta["curve"]
        log(f"resumed from {ckpt_path} at step {step} (written by {meta['world']} process{'es' if meta['world'] > 1 else ''})")

    def val_kl() -> float:
        # Every process runs the same number of forwards (FSDP gathers collectively); the
        # padding past the last window counts zero.
        total = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for i in range(par.rank, n_val + (-n_val) % par.world, par.world):
                x = val[i % n_val : i % n_val + 1].to(dev)
                kl = float(kl_teacher_student(teacher(x), student(x)))
                total += kl if i < n_val else 0.0
        return float(P.sum_over_ranks(total, par)) / n_val

    def curves() -> dict:
        return {
            "model": os.path.abspath(o.model), "sparsity": o.sparsity, "processes": par.world, "backend": par.backend,
            "device": dev.type, "fsdp": o.fsdp, "batch": o.batch, "batch_per_process": o.batch // par.world, "accumulate": o.accumulate,
            "seq_len": o.seq_len, "lr": o.lr, "warmup": o.warmup, "seed": o.seed, "steps": curve,
            "val": [h for h in history if "val_kl" in h],
        }

    def checkpoint() -> None:
        # Collective under DDP/FSDP (the full state is gathered on process 0), written by 0 alone.
        sd = get_model_state_dict(run, options=full)
        osd = get_optimizer_state_dict(run, opt, options=full)
        if not par.main:
            return
        _save_atomic(ckpt_path, lambda tmp: torch.save({
            "format": CHECKPOINT_FORMAT, "model": os.path.abspath(o.model), "sparsity": o.sparsity, "batch": o.batch,
            "world": par.world, "step": step, "history": history, "curve": curve, "student": sd, "opt": osd,
            "sched": sched.state_dict(), "options": asdict(o),
        }, tmp))
        _save_atomic(curves_path(o.out), lambda tmp: _write_json(tmp, curves()))

    kl_before = val_kl() if not history else history[0]["val_kl"]
    if not history:
        history.append({"step": 0, "val_kl": kl_before})
    how = "" if not par.distributed else f" on {par.world} processes ({par.backend}, {'FSDP' if o.fsdp else 'DDP'}, {o.batch // par.world} window(s) each per step)"
    log(f"distilling {os.path.basename(o.model)} ({cfg.arch}, {cfg.n_layer} layers, {qtype.name}) at sparsity {o.sparsity} on {dev}{how}: "
        f"{len(train)} training windows of {o.seq_len} tokens, {n_val} held out; val KL {kl_before:.4f}")
    bar = None
    if o.progress and par.main:
        try:
            from tqdm import tqdm
            bar = tqdm(total=o.steps, initial=step, desc="distill", unit="step", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None
    t0 = time.time()
    losses: list[float] = []
    stopped = "steps"
    while step < o.steps:
        if o.time_limit > 0 and P.any_rank(time.time() - t0 > o.time_limit * 60, par):
            stopped = "time limit"
            break
        idx = batches(step)
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=dev)
        for k in range(o.accumulate):
            x = train[idx[k * micro : (k + 1) * micro]].to(dev)
            with torch.no_grad():
                t_logits = teacher(x)
            # Gradients are averaged over the processes after the last micro-batch only.
            with P.gradient_sync(run, par, k == o.accumulate - 1):
                part = kl_teacher_student(t_logits, run(x)) / o.accumulate
                part.backward()
            loss += part.detach()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        step += 1
        losses.append(float(P.mean_over_ranks(loss, par)))
        curve.append({"step": step, "train_kl": losses[-1], "lr": lr})
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
    trained = get_model_state_dict(run, options=full)
    if not par.main:
        return {}
    written = write_distilled(o.model, o.out, {gguf_name: trained[key] for key, gguf_name in student.trained_names().items()})
    return {
        "model": os.path.abspath(o.model), "out": os.path.abspath(o.out), "checkpoint": os.path.abspath(ckpt_path),
        "curves": os.path.abspath(curves_path(o.out)), "arch": cfg.arch, "weight_type": qtype.name, "sparsity": o.sparsity,
        "steps": step, "stopped_by": stopped, "seq_len": o.seq_len, "batch": o.batch, "accumulate": o.accumulate, "processes": par.world,
        "backend": par.backend, "device": str(dev), "fsdp": o.fsdp, "lr": o.lr, "train_windows": len(train), "val_windows": n_val,
        "val_kl_before": kl_before, "val_kl_after": kl_after, "train_seconds": time.time() - t0,
        "train_kl_first": losses[0] if losses else None, "train_kl_last10": float(np.mean(losses[-10:])) if losses else None,
        "history": history, **written,
    }


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
