"""Synthetic episodes and small utilities shared by the model and engine tests."""
import torch
import torch.nn as nn

from model.backbone import build_backbone
from util.data.folds import get_fold

PASCAL_FOLD0 = get_fold("pascal", 0)
PASCAL_FOLD0_BASE = PASCAL_FOLD0.base


def make_batch(batch=1, shot=1, size=65, seed=0, class_ids=None, base_classes=16):
    """A batch dict as the episode datasets yield it (docs/ARCHITECTURE.md), random content.
    Masks have foreground, background and some 255 pixels."""
    gen = torch.Generator().manual_seed(seed)

    def mask(*shape):
        m = (torch.rand(*shape, generator=gen) > 0.5).long()
        m[..., :2, :] = 255
        return m

    base_mask = torch.randint(0, base_classes, (batch, size, size), generator=gen)
    base_mask[..., :2, :] = 255
    return {
        "query_img": torch.randn(batch, 3, size, size, generator=gen),
        "query_mask": mask(batch, size, size),
        "support_imgs": torch.randn(batch, shot, 3, size, size, generator=gen),
        "support_masks": mask(batch, shot, size, size),
        "class_id": torch.tensor(class_ids if class_ids is not None else [6 + i for i in range(batch)]),
        "query_base_mask": base_mask,
    }


def frozen_backbone(name="resnet50"):
    """A random-init backbone whose parameters do not train (cheap backward in shape tests)."""
    return build_backbone(name).requires_grad_(False)


def randomise(module, seed=0):
    """Fill every parameter and BatchNorm buffer with seeded random values, so that a state-dict
    round trip that drops or swaps any tensor changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module


def head_grads(model, prefix_excluded=("backbone.", "base_learner.")):
    """{name: grad} of the trainable parameters outside the backbone(s)."""
    return {n: p.grad for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(prefix_excluded)}
