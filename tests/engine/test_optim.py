"""The learning rate actually decays, per iteration, and parameter groups follow the multipliers."""
import pytest
import torch
import torch.nn as nn

from engine.optim import lr_factor, param_groups, set_lr


def test_cosine_decays_every_iteration_to_zero():
    total = 100
    factors = [lr_factor(i, total, "cosine") for i in range(total + 1)]
    assert factors[0] == 1.0
    assert factors[50] == pytest.approx(0.5)
    assert factors[total] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(factors, factors[1:]))  # strictly decreasing


def test_poly_and_warmup():
    assert lr_factor(50, 100, "poly", power=0.9) == pytest.approx(0.5 ** 0.9)
    assert [lr_factor(i, 100, "cosine", warmup=4) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 100, "cosine", warmup=4) == 1.0
    assert lr_factor(52, 100, "cosine", warmup=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(0, 10, "step")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        self.head = nn.Linear(2, 1)


def test_groups_multipliers_and_frozen_parameters():
    model = Tiny()
    for p in model.backbone[0].parameters():
        p.requires_grad = False
    groups = param_groups(model, backbone_lr_mult=0.1, head_lr_mult=10.0)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert len(groups[0]["params"]) == 2 and len(groups[1]["params"]) == 2  # frozen layer left out
    opt = torch.optim.SGD(groups, lr=1.0)
    set_lr(opt, 0.015, lr_factor(0, 10, "cosine"))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0015, 0.15])
    set_lr(opt, 0.015, lr_factor(5, 10, "cosine"))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.00075, 0.075])


def test_no_trainable_parameter_is_an_error():
    model = Tiny()
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(model, 1.0, 1.0)
