# Processes and devices for distillation, all from torch.distributed: one process on its own, or
# one of several started by torchrun (gloo between CPU processes, NCCL between GPUs), with the
# student wrapped in DistributedDataParallel or sharded by FSDP (fully_shard).
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import DistillError

# Variables torchrun sets in every process it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Parallel:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process, no process group

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def pick_device(name: str, local_rank: int, world: int) -> torch.device:
    """auto: CUDA when torch sees a GPU, else CPU. Under torchrun each process takes the GPU of
    its local rank, so a device that names one index is refused there."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DistillError(f'--device "{name}" is not a torch device (cpu, cuda, cuda:1, auto)', everywhere=True) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DistillError(f"--device {name}: this torch build sees no CUDA device")
        if world > 1:
            if dev.index is not None:
                raise DistillError(f"--device {name} names one GPU; under torchrun each process takes cuda:<LOCAL_RANK>, so give --device cuda or auto", everywhere=True)
            dev = torch.device("cuda", local_rank)
        if (dev.index or 0) >= torch.cuda.device_count():
            raise DistillError(f"--device {dev}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type != "cpu":
        raise DistillError(f"--device {name}: only cpu and cuda are supported", everywhere=True)
    return dev


def setup(device: str) -> Parallel:
    """Joins torchrun's process group when started by torchrun (even with one process, so the
    launch is the same), else runs alone."""
    if "WORLD_SIZE" not in os.environ:
        return Parallel(0, 1, 0, pick_device(device, 0, 1), None)
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise DistillError(f"WORLD_SIZE is set but {', '.join(missing)} are not: start several processes with torchrun")
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    dev = pick_device(device, local, world)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if backend == "gloo" and not dist.is_gloo_available():
        raise DistillError("this torch build has no gloo backend, which CPU processes need")
    if backend == "nccl" and not dist.is_nccl_available():
        raise DistillError("this torch build has no NCCL backend, which CUDA processes need")
    dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None)
    return Parallel(rank, world, local, dev, backend)


def shutdown(par: Parallel) -> None:
    if par.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard_layer(layer: nn.Module) -> None:
    """FSDP: a layer's weights (and their gradients and Adam state) split over the processes,
    gathered for its forward and backward only; fully_shard moves the shard to the device."""
    from torch.distributed.fsdp import fully_shard

    fully_shard(layer)


def shard_root(model: nn.Module) -> None:
    """FSDP over a model whose layers are sharded already: the root manages what is left (the
    rope buffer) and drives the layers' gathers."""
    from torch.distributed.fsdp import fully_shard

    fully_shard(model)


def wrap_student(student: nn.Module, par: Parallel, fsdp: bool) -> nn.Module:
    """The module to call for the student's forward and backward: itself alone, sharded (FSDP:
    its layers were sharded as they were built; the embedding, head, output norm and biases read
    through model.w stay whole on every process), or replicated with gradients
    averaged after each backward (DDP)."""
    if not par.distributed:
        return student
    if fsdp:
        shard_root(student)
        return student
    ids = [par.device.index] if par.device.type == "cuda" else None
    # inv_freq is the only buffer and the same everywhere: no broadcast before each forward.
    return nn.parallel.DistributedDataParallel(student, device_ids=ids, forward_sync_buffers=False)


@contextlib.contextmanager
def gradient_sync(run: nn.Module, par: Parallel, sync: bool):
    """Inside: a backward that averages gradients over the processes only when `sync` (the last
    micro-batch of a step); the others accumulate locally, as DDP's no_sync and FSDP's
    set_requires_gradient_sync provide."""
    if not par.distributed or sync:
        if par.distributed and hasattr(run, "set_requires_gradient_sync"):
            run.set_requires_gradient_sync(True)
        yield
    elif isinstance(run, nn.parallel.DistributedDataParallel):
        with run.no_sync():
            yield
    else:
        run.set_requires_gradient_sync(False)
        yield


def mean_over_ranks(x: torch.Tensor, par: Parallel) -> torch.Tensor:
    """The mean of a scalar over the processes (each computed on an equal share of the batch)."""
    if not par.distributed:
        return x.detach()
    y = x.detach().clone().to(par.device)
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / par.world


def sum_over_ranks(x: torch.Tensor, par: Parallel) -> torch.Tensor:
    if not par.distributed:
        return x.detach()
    y = x.detach().clone().to(par.device)
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def any_rank(flag: bool, par: Parallel) -> bool:
    """True on every process when it is true on one (so all stop at the same step)."""
    if not par.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=par.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast(obj, par: Parallel):
    """Process 0's Python object on every process."""
    if not par.distributed:
        return obj
    box = [obj if par.main else None]
    dist.broadcast_object_list(box, src=0, device=par.device if par.device.type == "cuda" else None)
    return box[0]
