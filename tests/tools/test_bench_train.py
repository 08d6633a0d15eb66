"""tools.bench_train and its candidates: each change does what it says without changing the
model's function, and the command prints its table and ratio line."""
import copy
import re

import torch
import torch.nn as nn

from model.backbone import build_backbone
from tools import bench_train
from tools.train_candidates import (AffineFrozenBatchNorm2d, NoGrad, affine_frozen_batchnorm,
                                    frozen_stages_without_grad, options)


def test_affine_frozen_batchnorm_computes_batchnorm_and_keeps_nothing():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    bn.requires_grad_(False)
    affine = affine_frozen_batchnorm(copy.deepcopy(nn.Sequential(bn)))[0]
    assert type(affine) is AffineFrozenBatchNorm2d
    x = torch.randn(2, 6, 5, 5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = affine(x)
    assert saved == [] or all(t.numel() == 6 for t in saved)  # per-channel constants at most
    torch.testing.assert_close(y, bn(x), rtol=1e-5, atol=1e-6)
    affine.train()  # in training mode (or with trainable affine) it is BatchNorm itself
    torch.testing.assert_close(affine(x), nn.BatchNorm2d.forward(affine, x))


def test_frozen_no_grad_wraps_only_the_leading_frozen_stages():
    backbone = build_backbone("resnet50").requires_grad_(False)
    backbone.layer2.requires_grad_(True)
    frozen_stages_without_grad(backbone)
    assert [type(getattr(backbone, s)) is NoGrad for s in ("layer0", "layer1", "layer2",
                                                            "layer3", "layer4")] == \
        [True, True, False, False, False]


def test_combined_leaves_out_what_needs_cuda_on_the_cpu():
    assert "pinned_non_blocking" not in options("combined", torch.device("cpu"))
    assert "pinned_non_blocking" in options("combined", torch.device("cuda"))
    assert options("baseline", torch.device("cpu")) == set()


def test_bench_train_prints_table_and_ratios(capsys):
    bench_train.main(["--archs", "baseline", "--size", "33", "--batch", "1", "--repeats", "1",
                      "--warmup", "0", "--candidates", "frozen_bn_affine", "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"ratios baseline: frozen_bn_affine=\d+\.\d{3}", lines[-1])
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert set(rows) == {"baseline", "frozen_bn_affine"}
    assert float(rows["frozen_bn_affine"][5]) < 1  # saved-memory ratio: BatchNorm keeps nothing
