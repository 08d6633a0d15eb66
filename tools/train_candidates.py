"""The training-throughput candidates that tools.bench_train compares, each a change to one
training set-up (model, optimizer, mixed precision, host batch) made without touching the
engine, so that each can be measured before the engine adopts it.
"""
import torch
import torch.nn as nn

import svf
from model.backbone import STAGES

# name -> (what it changes, needs CUDA)
CANDIDATES = {
    "baseline": ("fp32, NCHW, default (foreach) SGD, pageable host batch", False),
    "channels_last": ("model and inputs in channels_last", False),
    "bf16": ("bf16 autocast", False),
    "fp16": ("fp16 autocast with a GradScaler", True),
    "fused_sgd": ("SGD(fused=True)", False),
    "frozen_no_grad": ("backbone stages that train nothing run under torch.no_grad", False),
    "pinned_non_blocking": ("host batch in pinned memory, copied with non_blocking", True),
    "frozen_bn_affine": ("frozen eval-mode BatchNorm computed as x * scale + shift", False),
    "svf_keep_activation": ("SVD convs keep the rank-r activation (svf keep='activation')",
                            False),
    "sync_every_step": ("loss.item() after every step (one host sync per iteration)", False),
    "combined": ("channels_last + bf16 + fused_sgd + pinned_non_blocking + frozen_bn_affine",
                 False),
}
COMBINED = ("channels_last", "bf16", "fused_sgd", "pinned_non_blocking", "frozen_bn_affine")


class AffineFrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in eval mode with frozen affine parameters, computes the per-channel
    affine it then is, which keeps nothing for the backward (F.batch_norm keeps its input);
    otherwise it is plain BatchNorm2d. Same state dict."""

    def forward(self, x):
        if self.training or any(p.requires_grad for p in (self.weight, self.bias)
                                if p is not None):
            return super().forward(x)
        scale = (self.running_var + self.eps).rsqrt()
        shift = -self.running_mean * scale
        if self.weight is not None:
            scale, shift = scale * self.weight, shift * self.weight + self.bias
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)


class NoGrad(nn.Module):
    """Runs `module` under torch.no_grad."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        with torch.no_grad():
            return self.module(x)


def affine_frozen_batchnorm(model):
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = AffineFrozenBatchNorm2d  # same attributes; only forward differs
    return model


def frozen_stages_without_grad(backbone):
    """Wrap the leading stages in which nothing trains in NoGrad (later ones must keep the
    graph for the trainable stages before them)."""
    for name in STAGES:
        stage = getattr(backbone, name)
        if any(p.requires_grad for p in stage.parameters()):
            break
        setattr(backbone, name, NoGrad(stage))


def keep_activations(model):
    for m in model.modules():
        if isinstance(m, svf.SVDConv2d):
            m.keep = "activation"


def options(candidate, device):
    """The set of single changes a candidate applies on `device`."""
    changes = set(COMBINED) if candidate == "combined" else {candidate} - {"baseline"}
    return {c for c in changes if applicable(c, device)}


def applicable(candidate, device):
    return device.type == "cuda" or not CANDIDATES[candidate][1]


def prepare(model, changes):
    """Apply the model-side changes in place; returns the model."""
    if "channels_last" in changes:
        model.to(memory_format=torch.channels_last)
    if "frozen_bn_affine" in changes:
        affine_frozen_batchnorm(model)
    if "frozen_no_grad" in changes:
        frozen_stages_without_grad(model.backbone)
    if "svf_keep_activation" in changes:
        keep_activations(model)
    return model


def host_batch(batch, changes):
    """The batch as the loader hands it over: pinned when asked (channels_last images)."""
    out = {}
    for k, v in batch.items():
        if "channels_last" in changes and k == "query_img":
            v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v.pin_memory() if "pinned_non_blocking" in changes else v
    return out


def loss_is_finite(loss):
    """What a per-step divergence check costs: one host sync."""
    return bool(torch.isfinite(loss).item())
