"""SVDConv2d / SVDLinear: exact at full rank on varied layers, every computation path gives the
same outputs and gradients, low rank keeps the top singular values, to_dense round trip."""
import pytest
import torch
import torch.nn as nn

import svf
from svf.decompose import decompose, rank_from_ratio

CONVS = {
    "3x3": lambda: nn.Conv2d(8, 12, 3, padding=1),
    "1x1": lambda: nn.Conv2d(16, 8, 1, bias=False),
    "7x7 strided": lambda: nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False),
    "dilated": lambda: nn.Conv2d(8, 8, 3, padding=4, dilation=4),
    "grouped": lambda: nn.Conv2d(8, 12, 3, padding=1, groups=4),
    "depthwise": lambda: nn.Conv2d(8, 16, 3, padding=1, groups=8, bias=False),
    "rect same reflect": lambda: nn.Conv2d(8, 6, (3, 5), padding="same", padding_mode="reflect"),
    "circular strided": lambda: nn.Conv2d(6, 10, 5, stride=2, padding=2, padding_mode="circular"),
    "wide 1x1 s2": lambda: nn.Conv2d(4, 24, 1, stride=2),
}


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def svd_train_s(layer, path):
    """The layer set up as SVF trains it: only S (and the bias) need gradients."""
    layer.requires_grad_(False)
    layer.S.requires_grad_(True)
    if layer.bias is not None:
        layer.bias.requires_grad_(True)
    layer.compute = path
    return layer


@pytest.mark.parametrize("kind", CONVS)
def test_conv_exact_and_paths_agree(kind):
    torch.manual_seed(0)
    dense = CONVS[kind]()
    x = torch.randn(2, dense.in_channels, 11, 13, requires_grad=True)
    y_ref = dense(x)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    grad_x_ref = x.grad.clone()
    results = {}
    for path in ("auto", "two_conv", "rebuild"):
        layer = svd_train_s(svf.SVDConv2d.from_dense(dense), path)
        x.grad = None
        y = layer(x)
        y.backward(g)
        assert rel_err(y, y_ref) < 1e-5
        assert rel_err(x.grad, grad_x_ref) < 1e-5
        results[path] = (layer.S.grad, None if layer.bias is None else layer.bias.grad)
    for s_grad, b_grad in (results["two_conv"], results["auto"]):
        assert rel_err(s_grad, results["rebuild"][0]) < 1e-5
        if b_grad is not None:
            assert rel_err(b_grad, dense.bias.grad) < 1e-5
    with torch.no_grad():  # evaluation takes the cached dense weight
        assert rel_err(svf.SVDConv2d.from_dense(dense)(x), y_ref) < 1e-5


def test_singular_value_gradient_matches_definition():
    """dL/dS_i = sum over pixels of (u_i^T g)(v_i^T x): the gradient of W = U diag(S) V^T."""
    torch.manual_seed(1)
    dense = nn.Conv2d(6, 5, 3, padding=1, bias=False).double()
    layer = svd_train_s(svf.SVDConv2d.from_dense(dense), "two_conv")
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    w = dense.weight.detach().clone().requires_grad_(True)
    g = torch.randn(2, 5, 7, 7, dtype=torch.float64)
    torch.nn.functional.conv2d(x, w, padding=1).backward(g)
    layer(x).backward(g)
    expected = torch.einsum("or,oc,rc->r", layer.U[0], w.grad.reshape(5, -1), layer.V[0])
    assert torch.allclose(layer.S.grad[0], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_exact_with_and_without_bias(bias):
    torch.manual_seed(0)
    dense = nn.Linear(10, 7, bias=bias)
    x = torch.randn(3, 4, 10, requires_grad=True)
    y_ref = dense(x)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    grad_x_ref = x.grad.clone()
    for path in ("two_conv", "rebuild"):
        layer = svd_train_s(svf.SVDLinear.from_dense(dense), path)
        x.grad = None
        y = layer(x)
        y.backward(g)
        assert rel_err(y, y_ref) < 1e-5 and rel_err(x.grad, grad_x_ref) < 1e-5
    assert rel_err(layer.to_dense().weight, dense.weight) < 1e-6


@pytest.mark.parametrize("kind", ["grouped", "depthwise", "circular strided"])
def test_to_dense_round_trip(kind):
    torch.manual_seed(0)
    dense = CONVS[kind]()
    back = svf.SVDConv2d.from_dense(dense).to_dense()
    assert type(back) is nn.Conv2d
    for name in ("stride", "padding", "dilation", "groups", "padding_mode", "kernel_size"):
        assert getattr(back, name) == getattr(dense, name)
    assert rel_err(back.weight, dense.weight) < 1e-6
    if dense.bias is not None:
        assert torch.equal(back.bias, dense.bias)


def test_grouped_conv_is_decomposed_per_group():
    torch.manual_seed(0)
    dense = nn.Conv2d(8, 12, 3, groups=4, bias=False)
    layer = svf.SVDConv2d.from_dense(dense)
    assert layer.U.shape == (4, 3, 3) and layer.S.shape == (4, 3) and layer.V.shape == (4, 3, 18)
    for g in range(4):
        block = dense.weight[3 * g:3 * (g + 1)].reshape(3, -1).double()
        assert torch.allclose(layer.S[g].double(), torch.linalg.svdvals(block), rtol=1e-6)


def test_low_rank_keeps_the_top_singular_values():
    torch.manual_seed(0)
    dense = nn.Conv2d(16, 32, 3, bias=False)
    layer = svf.SVDConv2d.from_dense(dense, rank=5)
    assert layer.rank == 5 and layer.full_rank == 32
    svals = torch.linalg.svdvals(dense.weight.reshape(32, -1).double())
    err = (layer.to_dense().weight - dense.weight).reshape(32, -1).double()
    assert torch.allclose(torch.linalg.matrix_norm(err), svals[5:].norm(), rtol=1e-4)


def test_rank_rule_rounds_and_never_snaps_to_multiples_of_4():
    assert rank_from_ratio(27, 1.0) == 27  # the 3x3 stem conv stays exact
    assert rank_from_ratio(64, 0.5) == 32 and rank_from_ratio(10, 0.25) == 3  # 2.5 -> 3
    assert rank_from_ratio(7, 0.01) == 1
    with pytest.raises(ValueError, match="rank ratio must be a number in \\(0, 1\\], got 1.5"):
        rank_from_ratio(8, 1.5)
    with pytest.raises(ValueError, match="rank must be in \\[1, 4\\]"):
        decompose(torch.randn(4, 4), rank=5)


def test_fresh_layers_are_initialised():
    torch.manual_seed(0)
    for layer in (svf.SVDLinear(20, 10), svf.SVDConv2d(4, 8, 3, padding=1)):
        weight = layer.to_dense().weight
        assert torch.isfinite(weight).all() and weight.abs().max() > 0
        assert 0 < weight.std() < 1  # PyTorch's default init, not empty memory


def test_exp_parametrisation_starts_at_the_dense_layer_and_trains_s_delta():
    torch.manual_seed(0)
    dense = nn.Conv2d(4, 6, 3, padding=1)
    layer = svf.SVDConv2d.from_dense(dense)
    layer.requires_grad_(False)
    layer.use_exp_singular_values()
    x = torch.randn(1, 4, 8, 8)
    assert rel_err(layer(x), dense(x)) < 1e-5
    layer(x).sum().backward()
    assert layer.S.grad is None and layer.S_delta.grad is not None
    with torch.no_grad():
        layer.S_delta.fill_(0.5)
    expected = layer.S * torch.exp(torch.tensor(0.5))
    assert torch.allclose(layer.singular_values(), expected)
    assert rel_err(layer.to_dense()(x), layer(x)) < 1e-5


def test_cached_weight_follows_in_place_updates():
    torch.manual_seed(0)
    layer = svf.SVDConv2d.from_dense(nn.Conv2d(4, 6, 3, padding=1))
    layer.requires_grad_(False)
    x = torch.randn(1, 4, 8, 8)
    before = layer(x)
    with torch.no_grad():
        layer.S.mul_(2)  # what an optimizer step or load_state_dict does
    after = layer(x)
    assert rel_err(after - layer.bias.view(1, -1, 1, 1),
                   2 * (before - layer.bias.view(1, -1, 1, 1))) < 1e-5


def test_bad_compute_path_and_bad_dense_layer():
    layer = svf.SVDLinear(4, 3)
    with pytest.raises(ValueError, match="compute must be one of auto, two_conv, rebuild"):
        layer.compute = "fast"
    with pytest.raises(ValueError, match="expects an nn.Conv2d, got Linear"):
        svf.SVDConv2d.from_dense(nn.Linear(3, 3))


def test_double_precision_layers_stay_double():
    dense = nn.Conv2d(3, 5, 3).double()
    layer = svf.SVDConv2d.from_dense(dense)
    assert layer.U.dtype == layer.S.dtype == torch.float64
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    assert rel_err(layer(x), dense(x)) < 1e-12


def saved_storages(fn, params):
    """Storage pointers of the tensors autograd saves while fn() runs, parameters excluded."""
    excluded = {p.untyped_storage().data_ptr() for p in params}
    seen = set()

    def pack(t):
        seen.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return seen - excluded, out


@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
def test_only_the_input_is_kept_when_a_relu_keeps_it(path):
    """Behind a ReLU (which keeps its output) the layer keeps nothing else: no rank-r
    activation, no rebuilt weight."""
    torch.manual_seed(0)
    layer = svd_train_s(svf.SVDConv2d.from_dense(nn.Conv2d(16, 8, 3, padding=1)), path)
    x = torch.relu(torch.randn(2, 16, 9, 9, requires_grad=True))
    kept, y = saved_storages(lambda: layer(x), layer.parameters())
    assert kept == {x.untyped_storage().data_ptr()}
    y.sum().backward()
    assert layer.S.grad is not None and torch.isfinite(layer.S.grad).all()


def test_two_conv_keeps_the_smaller_of_input_and_rank_r_activation():
    torch.manual_seed(0)
    layer = svd_train_s(svf.SVDConv2d.from_dense(nn.Conv2d(16, 4, 1, bias=False)), "auto")
    x = torch.randn(2, 16, 9, 9)  # needs no gradient and nothing else keeps it
    kept, _ = saved_storages(lambda: layer(x), layer.parameters())
    assert layer.plan(x) == ("two_conv", False)
    assert len(kept) == 1 and x.untyped_storage().data_ptr() not in kept  # `a`: 4 channels
    layer.keep = "activation"
    assert layer.plan(torch.relu(x.requires_grad_()))[1] is False
    with pytest.raises(ValueError, match="keep must be one of least, activation"):
        layer.keep = "input"


@pytest.mark.parametrize("keep", ["least", "activation"])
@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
def test_gradients_behind_a_relu_match_the_dense_layer(path, keep):
    """The input kept and `a` recomputed in the backward give the dense layer's gradients."""
    torch.manual_seed(0)
    dense = nn.Conv2d(6, 10, 3, stride=2, padding=2, dilation=2)
    leaf = torch.randn(2, 6, 13, 11, requires_grad=True)
    g = torch.randn_like(dense(torch.relu(leaf)))
    dense(torch.relu(leaf)).backward(g)
    grad_x_ref = leaf.grad.clone()
    w = dense.weight.detach().clone().requires_grad_(True)
    torch.nn.functional.conv2d(torch.relu(leaf.detach()), w, None, 2, 2, 2).backward(g)
    layer = svd_train_s(svf.SVDConv2d.from_dense(dense), path)
    layer.keep = keep
    leaf.grad = None
    layer(torch.relu(leaf)).backward(g)
    expected_s = torch.einsum("or,oc,rc->r", layer.U[0], w.grad.reshape(10, -1), layer.V[0])
    assert rel_err(leaf.grad, grad_x_ref) < 1e-5
    assert rel_err(layer.S.grad[0], expected_s) < 1e-5
    assert rel_err(layer.bias.grad, dense.bias.grad) < 1e-5


@pytest.mark.parametrize("path", ["two_conv", "rebuild"])
def test_bf16_autocast_and_channels_last(path):
    """Under autocast the backward runs in the gradient's dtype and sums dS in float32;
    channels_last inputs give the same results."""
    torch.manual_seed(0)
    dense = nn.Conv2d(8, 12, 3, padding=1)
    x = torch.randn(2, 8, 10, 10)
    reference = svd_train_s(svf.SVDConv2d.from_dense(dense), path)
    y_ref = reference(torch.relu(x.requires_grad_()))
    y_ref.sum().backward()
    layer = svd_train_s(svf.SVDConv2d.from_dense(dense), path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(torch.relu(x))
    assert y.dtype == torch.bfloat16 and rel_err(y.float(), y_ref) < 2e-2
    y.float().sum().backward()
    assert layer.S.grad.dtype == torch.float32 and rel_err(layer.S.grad, reference.S.grad) < 3e-2
    layer.zero_grad()
    y = layer(torch.relu(x.contiguous(memory_format=torch.channels_last)))
    y.sum().backward()
    assert rel_err(y, y_ref) < 1e-5 and rel_err(layer.S.grad, reference.S.grad) < 1e-5
