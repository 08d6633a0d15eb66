"""Process-level setup shared by train.py and test.py: device, torchrun, seeds, AMP."""
import contextlib
import random

import cv2
import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from util.distributed import init_distributed, resolve_device

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


class Runtime:
    """Device, process group and AMP settings of this process."""

    def __init__(self, cfg):
        cv2.setNumThreads(0)  # OpenCV's own threads would fight the DataLoader workers
        kind = resolve_device(cfg.device)
        if cfg.amp != "off" and kind != "cuda":
            raise RuntimeError(f"amp={cfg.amp} needs CUDA but this run is on {kind}; use amp=off")
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


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def to_device(batch, device):
    """Move the batch's tensors to `device` (strings and lists of strings stay as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def freeze_batchnorm(module):
    """BatchNorm layers of `module` to eval mode: running statistics stay as pretrained."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
