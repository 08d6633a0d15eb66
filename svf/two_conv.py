"""The two-convolution computation of an SVD conv whose U and V are frozen, as one autograd
function that keeps only what the backward needs.

Forward:  a = conv_kxk(x, V);  y = conv_1x1(a, U diag(S)) + bias   (S folded into the small
          1x1 weight, so no scaled copy of `a` is made)
Backward: b = U^T g (1x1);  dS = sum over batch and pixels of a * b;
          dx = conv_kxk^T(b, diag(S) V) when x needs a gradient.

dS needs `a` at every pixel, or the input x it is computed from. The function keeps one of
them (`keep_input`): x when another op keeps it anyway (the ReLU before every conv of a
ResNet stage keeps its output), so that it costs no memory, at the price of recomputing `a`
in the backward (one more k x k conv to rank r); `a` otherwise. Plain autograd would keep x,
`a` and a * S. Mixed precision: the backward runs in the dtype of the incoming gradient and
sums dS in float32.
"""
import torch
import torch.nn.functional as F


def geometry(shape, stride, padding, dilation, groups):
    """What a convolution backward needs besides tensors: (shape, stride, padding, dilation as
    pairs, groups)."""
    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    return shape, pair(stride), pair(padding), pair(dilation), groups


def bias_grad(grad_y):
    """The bias gradient, summed in at least float32 (autocast gradients are half precision)."""
    return grad_y.sum((0, 2, 3), dtype=torch.promote_types(grad_y.dtype, torch.float32))


def same_memory_format(weight, like):
    """`weight` in channels_last when `like` is: the convolution backward picks its layout from
    its input and weight, and the input passed here is a shape-only stand-in."""
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(
            memory_format=torch.channels_last):
        return weight.contiguous(memory_format=torch.channels_last)
    return weight


def _fold(up, s, groups):
    """U diag(S) per group as a 1x1 conv weight [out, r, 1, 1]."""
    out, rank = up.shape[:2]
    return (up.view(groups, out // groups, rank) * s.view(groups, 1, rank)).view(up.shape)


class TwoConvSingularValues(torch.autograd.Function):
    """y = U diag(S) V^T * x computed as two convolutions; gradients for x, S and bias only."""

    @staticmethod
    def forward(ctx, x, down, s, up, bias, stride, padding, dilation, groups, keep_input):
        # down: V as [groups*r, in/groups, kh, kw]; up: U as [out, r, 1, 1]; s: [groups*r]
        a = F.conv2d(x, down, None, stride, padding, dilation, groups)
        y = F.conv2d(a, _fold(up, s, groups), bias, 1, 0, 1, groups)
        ctx.save_for_backward(x if keep_input else a, down, s, up)
        ctx.keep_input, ctx.a_dtype = keep_input, a.dtype
        ctx.geometry = geometry(x.shape, stride, padding, dilation, groups)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        kept, down, s, up = ctx.saved_tensors
        x_shape, stride, padding, dilation, groups = ctx.geometry
        dtype = grad_y.dtype
        b = F.conv_transpose2d(grad_y, up.to(dtype), groups=groups)
        grad_s = None
        if ctx.needs_input_grad[2]:
            a = kept
            if ctx.keep_input:
                a = F.conv2d(kept.to(ctx.a_dtype), down.to(ctx.a_dtype), None, stride, padding,
                             dilation, groups)
            total = torch.promote_types(a.dtype, torch.float32)  # a sum over every pixel
            grad_s = (a * b.to(a.dtype)).sum((0, 2, 3), dtype=total).to(s.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            shape_only = b.new_empty(1).expand(x_shape)  # only its shape is read
            scaled_down = same_memory_format((down * s.view(-1, 1, 1, 1)).to(dtype), b)
            grad_x = torch.ops.aten.convolution_backward(
                b, shape_only, scaled_down, None, stride, padding, dilation, False, (0, 0),
                groups, (True, False, False))[0]
        grad_bias = bias_grad(grad_y) if ctx.needs_input_grad[4] else None
        return grad_x, None, grad_s, None, grad_bias, None, None, None, None, None
