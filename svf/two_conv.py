"""The two-convolution computation of an SVD conv whose U and V are frozen, as one autograd
function that keeps only what the backward needs.

Forward:  a = conv_kxk(x, V);  y = conv_1x1(a, U diag(S)) + bias   (S folded into the small
          1x1 weight, so no scaled copy of `a` is made)
Backward: b = U^T g (1x1);  dS = sum over batch and pixels of a * b;
          dx = conv_kxk^T(b, diag(S) V) when x needs a gradient.

Plain autograd would also keep x and a * S alive for weight gradients that are never needed;
here only `a` (rank channels) is saved.
"""
import torch
import torch.nn.functional as F


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _fold(up, s, groups):
    """U diag(S) per group as a 1x1 conv weight [out, r, 1, 1]."""
    out, rank = up.shape[:2]
    return (up.view(groups, out // groups, rank) * s.view(groups, 1, rank)).view(up.shape)


class TwoConvSingularValues(torch.autograd.Function):
    """y = U diag(S) V^T * x computed as two convolutions; gradients for x, S and bias only."""

    @staticmethod
    def forward(ctx, x, down, s, up, bias, stride, padding, dilation, groups):
        # down: V as [groups*r, in/groups, kh, kw]; up: U as [out, r, 1, 1]; s: [groups*r]
        a = F.conv2d(x, down, None, stride, padding, dilation, groups)
        y = F.conv2d(a, _fold(up, s, groups), bias, 1, 0, 1, groups)
        ctx.save_for_backward(a, down, s, up)
        ctx.geometry = (x.shape, _pair(stride), _pair(padding), _pair(dilation), groups)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        a, down, s, up = ctx.saved_tensors
        x_shape, stride, padding, dilation, groups = ctx.geometry
        b = torch.ops.aten.convolution_backward(
            grad_y, a, up, None, (1, 1), (0, 0), (1, 1), False, (0, 0), groups,
            (True, False, False))[0]
        grad_s = (a * b).sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            shape_only = grad_y.new_empty(1).expand(x_shape)  # only its shape is read
            scaled_down = down * s.view(-1, 1, 1, 1)
            grad_x = torch.ops.aten.convolution_backward(
                b, shape_only, scaled_down, None, stride, padding, dilation, False, (0, 0),
                groups, (True, False, False))[0]
        grad_bias = grad_y.sum((0, 2, 3)) if ctx.needs_input_grad[4] else None
        return grad_x, None, grad_s, None, grad_bias, None, None, None, None
