"""Process-level setup shared by train.py and test.py: the device, the torchrun process group
(torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in the environment) and mixed precision."""
import contextlib
import os
from dataclasses import dataclass

import cv2
import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from util.data.folds import IGNORE_LABEL

DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def resolve_device(name):
    """'auto' -> cuda when available; 'cuda' without CUDA is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but torch sees no CUDA device; use device=cpu or auto")
    return name


def init_distributed(device_kind):
    """Start the process group when launched by torchrun with WORLD_SIZE > 1.

    NCCL on CUDA, gloo on the CPU. Returns (DistInfo, torch.device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device_kind == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    else:
        device = torch.device("cpu")
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return info, device


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup_distributed():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class Runtime:
    """Device, process group and AMP settings of this process."""

    def __init__(self, cfg):
        cv2.setNumThreads(0)  # OpenCV's own threads would fight the DataLoader workers
        kind = resolve_device(cfg.device)
        if cfg.amp != "off" and kind != "cuda":
            raise ValueError(f"amp={cfg.amp} needs CUDA but this run is on {kind}; use amp=off")
        self.dist, self.device = init_distributed(kind)
        self.amp_dtype = AMP_DTYPES[cfg.amp]
        if kind == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = cfg.deterministic
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def step_pixel_counts(batch, keys=("query_mask", "query_base_mask")):
    """{target key: valid pixels of this step over every process / the number of processes},
    for model.common.segmentation_loss under DDP (one all_reduce)."""
    present = [k for k in keys if k in batch]
    counts = torch.stack([(batch[k] != IGNORE_LABEL).sum() for k in present]).double()
    dist.all_reduce(counts)
    return {k: (c / dist.get_world_size()).float() for k, c in zip(present, counts)}


def to_device(batch, device):
    """Move the batch's tensors to `device` (strings and lists of strings stay as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def freeze_batchnorm(module):
    """BatchNorm layers of `module` to eval mode: running statistics stay as pretrained."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
