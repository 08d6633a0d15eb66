"""The scale controls of the SVF paper (its Table 11): a frozen dense layer with a trainable
per-channel scale on one side of the weight.

* side "out" (S'W): one scale per output channel; y = s * (W x) + b. The bias is not scaled.
* side "in"  (WS'): one scale per input channel, shared by the k x k taps: y = W (s * x) + b.

Both are computed by scaling activations, so the frozen weight never needs a gradient (two
dense passes instead of full fine-tuning's three).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

SIDES = ("out", "in")


class ChannelScaledLayer(nn.Module):
    """Wraps an nn.Conv2d or nn.Linear (kept frozen as `layer`) with `scale`, starting at 1."""

    def __init__(self, layer, side):
        super().__init__()
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            raise ValueError(f"ChannelScaledLayer wraps nn.Conv2d or nn.Linear, got "
                             f"{type(layer).__name__}")
        if side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
        self.layer, self.side = layer, side
        for p in layer.parameters():
            p.requires_grad_(False)
        weight = layer.weight
        if isinstance(layer, nn.Conv2d):
            count = layer.out_channels if side == "out" else layer.in_channels
        else:
            count = layer.out_features if side == "out" else layer.in_features
        self.scale = nn.Parameter(torch.ones(count, device=weight.device, dtype=weight.dtype))

    def forward(self, x):
        channel_dim = -3 if isinstance(self.layer, nn.Conv2d) else -1
        if self.side == "in":
            return self.layer(x * _along(self.scale, x.dim(), channel_dim))
        if isinstance(self.layer, nn.Conv2d):
            y = self.layer._conv_forward(x, self.layer.weight, None)
        else:
            y = F.linear(x, self.layer.weight)
        y = y * _along(self.scale, y.dim(), channel_dim)
        bias = self.layer.bias
        return y if bias is None else y + _along(bias, y.dim(), channel_dim)

    @torch.no_grad()
    def to_dense(self):
        """A copy of the wrapped layer with the scale folded into its weight."""
        dense = copy.deepcopy(self.layer)
        weight = dense.weight
        if self.side == "out":
            weight.mul_(_along(self.scale, weight.dim(), 0))
        elif isinstance(dense, nn.Conv2d):  # weight [out, in/groups, k, k], groups in order
            groups = dense.groups
            blocks = weight.view(groups, weight.shape[0] // groups, weight.shape[1], -1)
            blocks.mul_(self.scale.view(groups, 1, weight.shape[1], 1))
        else:
            weight.mul_(self.scale.view(1, -1))
        for p in dense.parameters():
            p.requires_grad_(self.scale.requires_grad)
        return dense

    def extra_repr(self):
        return f"side={self.side}"


def _along(vector, ndim, dim):
    """`vector` shaped to broadcast along dimension `dim` of an ndim-dimensional tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return vector.view(shape)
