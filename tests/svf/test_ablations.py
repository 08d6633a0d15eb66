"""The ablation options of svf.finetune on the tiny backbone: kernel filters (all / 3x3 / 1x1),
BatchNorm beside another mode, S and S' together. Each trains exactly the parameters it
names, starts from the dense function and merges back to the dense architecture."""
import pytest
import torch
import torch.nn as nn

import svf

from tests.svf.test_finetune import (BN_PARAMS, LISTED, X, grads_reached, in_stages, make_tiny,
                                     trained_then_merged)

# the dense layers of the tiny backbone's listed stages, by kernel
KXK = ("layer2.0.0", "layer3.0", "layer4.0.0")      # 3x3 convs (layer2's grouped), all biased
POINTWISE = ("layer2.1", "layer4.2")                # a 1x1 conv without bias, a Linear
LISTED_BN = {n for n in BN_PARAMS if in_stages(n, LISTED)}


def names(layers, *suffixes):
    return {f"{layer}.{suffix}" for layer in layers for suffix in suffixes}


CASES = {  # id -> (finetune keyword arguments, the parameter names that must train)
    "partial 3x3": (dict(mode="partial", kernels="3x3"), names(KXK, "weight", "bias")),
    "partial 1x1": (dict(mode="partial", kernels="1x1"),
                    {"layer2.1.weight", "layer4.2.weight", "layer4.2.bias"}),
    "partial 3x3 + bn": (dict(mode="partial", kernels="3x3", train_bn=True),
                         names(KXK, "weight", "bias") | LISTED_BN),
    "svf 3x3": (dict(mode="svf", kernels="3x3"), names(KXK, "S")),
    "svf 1x1": (dict(mode="svf", kernels="1x1"), names(POINTWISE, "S")),
    "svf + bn": (dict(mode="svf", train_bn=True), names(KXK + POINTWISE, "S") | LISTED_BN),
    "svf exp": (dict(mode="svf", param="exp"), names(KXK + POINTWISE, "S_delta")),
    "svf exp_both": (dict(mode="svf", param="exp_both"), names(KXK + POINTWISE, "S", "S_delta")),
    "svf U+S+V 1x1": (dict(mode="svf", kernels="1x1", factors=("U", "S", "V")),
                      names(POINTWISE, "U", "S", "V")),
    "scale_out 1x1": (dict(mode="scale_out", kernels="1x1"), names(POINTWISE, "scale")),
    "scale_in 3x3 + bn": (dict(mode="scale_in", kernels="3x3", train_bn=True),
                          names(KXK, "scale") | LISTED_BN),
    "rotation": (dict(mode="rotation"), names(KXK + POINTWISE, "scale")),
    "rotation 3x3": (dict(mode="rotation", kernels="3x3"), names(KXK, "scale")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_option_trains_exactly_what_it_names(case):
    kwargs, expected = CASES[case]
    model = make_tiny()
    with torch.no_grad():
        dense = model(X)
    summary = svf.finetune(model, **kwargs)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected
    assert grads_reached(model, X) == expected
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    with torch.no_grad():  # the starting point is the pretrained function
        for stage, out in model(X).items():
            assert torch.allclose(out, dense[stage], rtol=1e-5, atol=1e-5), (case, stage)


@pytest.mark.parametrize("case", list(CASES))
def test_each_option_merges_back_to_the_dense_architecture(case):
    kwargs, _ = CASES[case]
    model = make_tiny()
    dense_types = [type(m) for m in model.modules()]
    svf.finetune(model, **kwargs)
    trained, merged = trained_then_merged(model)
    assert [type(m) for m in model.modules()] == dense_types
    for stage in trained:
        assert torch.allclose(merged[stage], trained[stage], rtol=1e-4, atol=1e-5), (case, stage)


def test_kernel_filter_leaves_the_other_layers_dense_and_frozen():
    model = make_tiny()
    svf.finetune(model, "svf", kernels="3x3")
    assert isinstance(model.layer3[0], svf.SVDConv2d)
    assert type(model.layer2[1]) is nn.Conv2d and not model.layer2[1].weight.requires_grad
    assert type(model.layer4[2]) is nn.Linear and not model.layer4[2].weight.requires_grad


def test_exp_both_computes_s_times_exp_s_prime():
    model = make_tiny()
    svf.finetune(model, "svf", layers=("layer3",), param="exp_both")
    layer = model.layer3[0]
    assert layer.S.requires_grad and layer.S_delta.requires_grad
    assert torch.equal(layer.S_delta, torch.zeros_like(layer.S))
    with torch.no_grad():
        layer.S_delta.fill_(0.5)
        layer.S.mul_(2.0)
    expected = layer.S.detach() * torch.exp(torch.tensor(0.5))
    assert torch.allclose(layer.singular_values().detach(), expected)


@pytest.mark.parametrize("kwargs, text", [
    (dict(mode="partial", kernels="1x1"), "mode partial on layer2, layer3, layer4, kernels 1x1 only"),
    (dict(mode="svf", train_bn=True, param="exp_both"),
     "mode svf on layer2, layer3, layer4, factors S, param exp_both, rank ratio 1, "
     "with BatchNorm weight and bias"),
    (dict(mode="rotation", rotation_seed=7), "mode rotation on layer2, layer3, layer4, "
                                             "rotation seed 7"),
])
def test_summary_names_the_options(kwargs, text):
    assert svf.finetune(make_tiny(), **kwargs).description == text
