"""The random-rotation control of the SVF paper (its Table 13): W' = R diag(s) R^T W.

R is a fixed random orthogonal matrix on the output side (one per group of a grouped conv, so
the merged layer keeps its groups), stored as a buffer: it never trains, it is saved with the
model's state dict, and it is drawn reproducibly from a seed and the layer's name. Only s
trains; it starts at 1, where R R^T = I gives back W. With R = I this is scale_out (S'W).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .decompose import single_cpu_thread
from .scaled import ChannelScaledLayer

_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def layer_seed(seed, name):
    """A 64-bit seed from `seed` and a layer name (FNV-1a: stable across runs and machines,
    unlike Python's salted hash), so a layer's R does not depend on which other layers rotate."""
    value = _FNV_OFFSET
    for byte in f"{seed}:{name}".encode():
        value = ((value ^ byte) * _FNV_PRIME) % 2 ** 64
    return value


def random_rotation(size, generator):
    """A Haar-random orthogonal matrix, [size, size] in float64: the Q factor of a Gaussian
    matrix with the signs of R's diagonal folded in. Its determinant is left as drawn: flipping
    a column of R leaves R diag(s) R^T unchanged, so rotations and reflections act alike here."""
    gaussian = torch.randn(size, size, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class RotatedScaleLayer(ChannelScaledLayer):
    """Wraps a frozen nn.Conv2d or nn.Linear; computes it with weight R diag(scale) R^T W (the
    bias is added unchanged). `rotation` holds R per group: [groups, out/groups, out/groups]."""

    def __init__(self, layer, seed):
        super().__init__(layer, "out")
        groups = getattr(layer, "groups", 1)
        rows = self.scale.shape[0] // groups
        generator = torch.Generator().manual_seed(seed)
        with single_cpu_thread(torch.device("cpu")):
            rotation = torch.stack([random_rotation(rows, generator) for _ in range(groups)])
        weight = layer.weight
        self.register_buffer("rotation", rotation.to(device=weight.device, dtype=weight.dtype))

    def rotated_weight(self, dtype=None):
        """R diag(scale) R^T W, in `dtype` (default: the weight's)."""
        dtype = dtype or self.layer.weight.dtype
        rotation = self.rotation.to(dtype)
        groups, rows, _ = rotation.shape
        blocks = self.layer.weight.to(dtype).reshape(groups, rows, -1)
        scale = self.scale.to(dtype).reshape(groups, rows, 1)
        mixed = torch.matmul(rotation, scale * torch.matmul(rotation.mT, blocks))
        return mixed.reshape(self.layer.weight.shape)

    def forward(self, x):
        weight = self.rotated_weight()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, self.layer.bias)
        return F.linear(x, weight, self.layer.bias)

    @torch.no_grad()
    def to_dense(self):
        """A copy of the wrapped layer whose weight is R diag(scale) R^T W (rebuilt in float64)."""
        dense = copy.deepcopy(self.layer)
        dense.weight.copy_(self.rotated_weight(torch.float64))
        for p in dense.parameters():
            p.requires_grad_(self.scale.requires_grad)
        return dense

    def extra_repr(self):
        return f"weight=R diag(scale) R^T W, rotation={tuple(self.rotation.shape)}"
