"""The SVD layers on CUDA: both training computations give the CPU's outputs and gradients,
under autocast they stay finite, and channels_last changes nothing."""
import copy

import pytest
import torch
import torch.nn as nn

import svf
from tests.svf.test_layers import rel_err, svd_train_s

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CONVS = {
    "3x3 dilated": lambda: nn.Conv2d(16, 24, 3, padding=2, dilation=2),
    "1x1 reduce": lambda: nn.Conv2d(32, 8, 1, bias=False),
    "3x3 strided": lambda: nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False),
    "grouped": lambda: nn.Conv2d(8, 12, 3, padding=1, groups=4),
}


def run(layer, leaf, grad):
    """Output, input gradient, S gradient of layer(relu(leaf)) (a ReLU keeps the input)."""
    leaf = leaf.detach().requires_grad_(True)
    y = layer(torch.relu(leaf))
    y.backward(grad)
    return y.detach(), leaf.grad, layer.S.grad


@pytest.mark.parametrize("keep", ["least", "activation"])
@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
@pytest.mark.parametrize("kind", CONVS)
def test_cuda_equals_cpu(kind, path, keep, no_tf32):
    torch.manual_seed(0)
    cpu = svd_train_s(svf.SVDConv2d.from_dense(CONVS[kind]()), path)
    cpu.keep = keep
    gpu = copy.deepcopy(cpu).cuda()
    leaf = torch.randn(2, cpu.in_channels, 15, 13)
    grad = torch.randn_like(cpu(leaf)).detach()
    expected = run(cpu, leaf, grad)
    got = run(gpu, leaf.cuda(), grad.cuda())
    for a, b in zip(got, expected):
        assert rel_err(a.cpu(), b) < 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
def test_autocast_on_cuda(path, dtype, no_tf32):
    torch.manual_seed(0)
    layer = svd_train_s(svf.SVDConv2d.from_dense(CONVS["3x3 dilated"]()), path).cuda()
    leaf = torch.randn(2, 16, 15, 13, device="cuda")
    reference = run(copy.deepcopy(layer), leaf, torch.ones(2, 24, 15, 13, device="cuda"))
    with torch.autocast("cuda", dtype=dtype):
        y = layer(torch.relu(leaf.requires_grad_()))
    assert y.dtype == dtype
    y.float().sum().backward()
    assert layer.S.grad.dtype == torch.float32 and torch.isfinite(layer.S.grad).all()
    assert rel_err(y.float(), reference[0]) < 2e-2
    assert rel_err(layer.S.grad, reference[2]) < 3e-2


@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
def test_channels_last_on_cuda(path, no_tf32):
    """Same values, and the input gradient stays channels_last (no layout conversions)."""
    torch.manual_seed(0)
    layer = svd_train_s(svf.SVDConv2d.from_dense(CONVS["3x3 dilated"]()), path).cuda()
    leaf = torch.randn(2, 16, 15, 13, device="cuda")
    grad = torch.randn(2, 24, 15, 13, device="cuda")
    expected = run(copy.deepcopy(layer), leaf, grad)
    cl = torch.channels_last
    x = torch.relu(leaf.contiguous(memory_format=cl).requires_grad_())
    layouts = []
    x.register_hook(lambda g: layouts.append(g.is_contiguous(memory_format=cl)))
    y = layer(x)
    y.backward(grad.contiguous(memory_format=cl))
    assert y.is_contiguous(memory_format=cl) and layouts == [True]
    assert rel_err(y, expected[0]) < 1e-5 and rel_err(layer.S.grad, expected[2]) < 1e-5
