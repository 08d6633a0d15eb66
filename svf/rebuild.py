"""The rebuild computation of an SVD conv whose U and V are frozen, as one autograd function
that keeps only the input.

Forward:  W = U diag(S) V^T per group;  y = conv(x, W) + bias
Backward: W rebuilt;  dx and dW from one convolution backward;  dS = diag(U^T dW V).

Plain autograd would also keep W (as large as the layer) and U diag(S) for every layer until
the backward; rebuilding W costs one weight-sized matmul instead. x is kept because dW needs
it; it costs no memory when another op keeps it anyway (the ReLU before a ResNet conv).
"""
import torch
import torch.nn.functional as F

from .two_conv import bias_grad, geometry


def dense_blocks(u, s, v):
    """U diag(S) V^T per group: u [g, rows, r], s [g, r], v [g, r, cols] -> [g, rows, cols]."""
    return torch.matmul(u * s.unsqueeze(1), v)


class RebuiltSingularValues(torch.autograd.Function):
    """y = conv(x, U diag(S) V^T) with gradients for x, S and bias only."""

    @staticmethod
    def forward(ctx, x, u, s, v, bias, weight_shape, stride, padding, dilation, groups):
        weight = dense_blocks(u, s, v).reshape(weight_shape)
        y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(x, u, s, v)
        ctx.geometry = geometry(weight_shape, stride, padding, dilation, groups)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, u, s, v = ctx.saved_tensors
        weight_shape, stride, padding, dilation, groups = ctx.geometry
        dtype = grad_y.dtype
        weight = dense_blocks(u, s, v).reshape(weight_shape).to(dtype)
        needs_x, needs_s = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_y, x.to(dtype), weight, None, stride, padding, dilation, False, (0, 0), groups,
            (needs_x, needs_s, False))
        grad_s = None
        if needs_s:
            grad_w = grad_w.reshape(u.shape[0], u.shape[1], v.shape[2]).to(u.dtype)
            grad_s = (torch.matmul(u.transpose(1, 2), grad_w) * v).sum(2)
        grad_bias = bias_grad(grad_y) if ctx.needs_input_grad[4] else None
        return grad_x, None, grad_s, None, grad_bias, None, None, None, None, None
