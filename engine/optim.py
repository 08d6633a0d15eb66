"""SGD parameter groups and the per-iteration learning-rate schedule.

The learning rate is a pure function of the global iteration (`lr_factor`), set on every group
before each step (`set_lr`): nothing to rebuild, and resuming only needs the iteration count. (The SVF
authors' code rebuilt a cosine scheduler every iteration, so their rate never decayed.)
"""
import math

import torch


def param_groups(model, backbone_lr_mult, head_lr_mult):
    """Two SGD groups of the trainable parameters: `model.backbone`'s and everything else's.

    Each group carries `lr_mult`; frozen parameters (requires_grad False) are left out."""
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    backbone, head = [], []
    for p in model.parameters():
        if p.requires_grad:
            (backbone if id(p) in backbone_ids else head).append(p)
    groups = []
    if backbone:
        groups.append({"params": backbone, "lr_mult": backbone_lr_mult, "name": "backbone"})
    if head:
        groups.append({"params": head, "lr_mult": head_lr_mult, "name": "head"})
    if not groups:
        raise ValueError("the model has no trainable parameter (check `mode` and `arch`)")
    return groups


def build_optimizer(model, cfg):
    groups = param_groups(model, cfg.backbone_lr_mult, cfg.head_lr_mult)
    for g in groups:
        g["lr"] = cfg.base_lr * g["lr_mult"]
    return torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


# schedule -> multiplier of base_lr at progress t (0 -> 1); `power` is poly's exponent
SCHEDULES = {
    "cosine": lambda t, power: 0.5 * (1.0 + math.cos(math.pi * t)),  # the SVF strategy
    "poly": lambda t, power: (1.0 - t) ** power,                      # PFENet / BAM
}


def lr_factor(iteration, total, schedule="cosine", power=0.9, warmup=0):
    """Multiplier of base_lr at 0-based `iteration` of `total`: linear warmup, then the
    schedule, t going from 0 to 1 over the iterations after the warmup."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if warmup and iteration < warmup:
        return (iteration + 1) / warmup
    t = min(max(iteration - warmup, 0) / max(total - warmup, 1), 1.0)
    return SCHEDULES[schedule](t, power)


def set_lr(optimizer, base_lr, factor):
    """Set every group's rate to base_lr * factor * its lr_mult; returns the head's (or first) rate."""
    for g in optimizer.param_groups:
        g["lr"] = base_lr * factor * g.get("lr_mult", 1.0)
    return optimizer.param_groups[-1]["lr"]


def optimizer_step(optimizer, loss, scaler=None):
    """Zero the gradients, backward `loss` and step, through the fp16 GradScaler when given."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
