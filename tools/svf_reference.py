"""BENCHMARK ONLY. A reference SVF written the way the authors' svf.py (syp2ysy/SVF) does it,
to time our implementation against. Do not use it for training: it keeps the authors'
choices on purpose -

* every Conv2d of the backbone is factorised (frozen stages too; the backbones have no
  Linear), always computed as
  two layers: k x k conv to rank r, multiply by a (1, r, 1, 1) parameter, 1 x 1 conv up;
* rank = floor(ratio x full rank / 4) x 4 (so e.g. the 27-column stem conv gets rank 24 and is
  no longer exact);
* `groups` is passed to the k x k conv only (wrong for grouped convs; our backbones have none).

Two of the authors' defects are not copied because they would distort the timing rather than
describe their computation: the resolver here keeps the model on its device (theirs moves it
to the CPU), and the SVD runs in float64 (svf.decompose, not part of the timing).
"""
import math

import torch
import torch.nn as nn

from svf.decompose import decompose
from svf.resolver import replace_modules


def authors_rank(full_rank, ratio=1.0, base=4):
    """The authors' rank rule: floored to a multiple of `base`, at least 1."""
    rank = math.floor(math.floor(full_rank * ratio) / base) * base
    return min(max(rank, 1), full_rank)


class ReferenceSVDConv2d(nn.Module):
    """conv_V (k x k, in -> r), times vector_S, conv_U (1 x 1, r -> out, with the bias)."""

    def __init__(self, conv, rank):
        super().__init__()
        weight = conv.weight.detach()
        u, s, v = decompose(weight, groups=1, rank=rank)  # float64 SVD, factors in weight dtype
        dtype, device = weight.dtype, weight.device
        self.conv_V = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, conv.stride,
                                conv.padding, conv.dilation, conv.groups, bias=False,
                                device=device, dtype=dtype)
        self.conv_U = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None,
                                device=device, dtype=dtype)
        self.vector_S = nn.Parameter(s.reshape(1, rank, 1, 1))
        with torch.no_grad():
            self.conv_V.weight.copy_(v.reshape(self.conv_V.weight.shape))
            self.conv_U.weight.copy_(u.reshape(self.conv_U.weight.shape))
            if conv.bias is not None:
                self.conv_U.bias.copy_(conv.bias)

    def forward(self, x):
        return self.conv_U(self.conv_V(x).mul(self.vector_S))


def reference_resolver(model, ratio=1.0):
    """Factorise every nn.Conv2d of `model` in place, the authors' way (see module doc)."""
    def make(_, module):
        if type(module) is not nn.Conv2d:
            return None
        weight = module.weight
        full_rank = min(weight.shape[0], weight[0].numel())
        return ReferenceSVDConv2d(module, authors_rank(full_rank, ratio))
    return replace_modules(model, make)


def reference_svf(backbone, train_stages=("layer2", "layer3", "layer4")):
    """The authors' SVF set-up: everything factorised, only vector_S of `train_stages` trains."""
    reference_resolver(backbone)
    backbone.requires_grad_(False)
    for stage in train_stages:
        for name, p in getattr(backbone, stage).named_parameters():
            if name.endswith("vector_S"):
                p.requires_grad_(True)
    return backbone
