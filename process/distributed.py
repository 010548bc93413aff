"""torch.distributed setup for CPU (gloo) and CUDA (nccl), from torchrun's env or launch's --local_rank."""
import datetime
import os
import threading

import torch
import torch.distributed as dist

from utils.errors import ConfigError


class DistInfo:
    """Who this process is: rank, world size, local rank and its device."""

    def __init__(self, rank=0, world=1, local_rank=0, device=torch.device("cpu")):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world > 1 or dist.is_initialized()


def parse_gpus(text):
    if text is None or text == "":
        return []
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--gpu {text}: expected GPU ids like 0 or 0,1") from None


def setup(distributed, gpu_text, local_rank_arg=None, timeout_s=1800):
    """Initialise the process group if asked; pick the device. No --gpu means CPU."""
    gpus = parse_gpus(gpu_text)
    if gpus and not torch.cuda.is_available():
        raise ConfigError(f"--gpu {gpu_text}: CUDA is not available on this machine; omit --gpu to run on CPU")
    if not distributed:
        device = torch.device(f"cuda:{gpus[0]}") if gpus else torch.device("cpu")
        if gpus:
            torch.cuda.set_device(device)
        return DistInfo(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank_arg if local_rank_arg is not None else 0))
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("--distributed: RANK/WORLD_SIZE not set; start with torchrun or python -m torch.distributed.launch")
    if gpus:
        device = torch.device(f"cuda:{gpus[local_rank % len(gpus)]}")
        torch.cuda.set_device(device)
    elif torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES"):
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def barrier(info):
    if info.enabled:
        dist.barrier()


def all_gather_objects(info, obj):
    """List of obj from every rank (just [obj] when not distributed)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def mean_across(info, tensor):
    """All-reduced mean of a tensor (for logged losses)."""
    if info.enabled:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= info.world
    return tensor


TEARDOWN_GRACE_S = 10


def cleanup(info, grace_s=TEARDOWN_GRACE_S):
    """Destroy the process group, waiting at most grace_s: with a dead peer the teardown itself can block, and the
    process must still end (process/cli.py exits with the lost-peer code after its one line)."""
    if not dist.is_initialized():
        return
    done = threading.Event()

    def destroy():
        try:
            dist.destroy_process_group()
        finally:
            done.set()

    threading.Thread(target=destroy, name="kdw-teardown", daemon=True).start()
    done.wait(grace_s)


def check_same_config(info, config):
    """Refuse to start when ranks resolved different configs (e.g. different files on different nodes)."""
    if not info.enabled:
        return
    mine = {f"[{s}] {k}": repr(v) for (s, k), v in config.values.items()}
    first = all_gather_objects(info, mine)[0]
    differ = sorted(k for k in set(mine) | set(first) if mine.get(k) != first.get(k))
    flag = torch.tensor([1.0 if differ else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if differ:
        raise ConfigError(f"{config.path}: {differ[0]} = {mine.get(differ[0])} on rank {info.rank} but "
                          f"{first.get(differ[0])} on rank 0; every rank must run the same config")
    if flag.item():
        raise ConfigError(f"{config.path}: another rank resolved a different config; every rank must run the same config")
