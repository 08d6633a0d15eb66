"""svf.resolver and svf.merge: exact on the backbones, the seed paper's options, wrappers."""
import pytest
import torch
import torch.nn as nn

import svf
from model.backbone import build_backbone
from tools.exactness import randomise_batchnorm as tools_randomise_batchnorm


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def randomise_batchnorm(model, seed=0):
    tools_randomise_batchnorm(model, torch.Generator().manual_seed(seed))


def small_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet50_tv", "vgg16"])
def test_full_rank_backbone_is_exact_and_merges_back(name):
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    randomise_batchnorm(backbone)
    x = torch.randn(1, 3, 41, 41)
    with torch.no_grad():
        reference = backbone(x)
    resolved = svf.resolver(backbone)
    assert resolved is backbone
    assert not any(type(m) is nn.Conv2d for m in backbone.modules())
    # the training computation: singular values trainable, grad enabled (two_conv / rebuild)
    for m in backbone.modules():
        if isinstance(m, svf.SVDConv2d):
            m.requires_grad_(False)
            m.S.requires_grad_(True)
    training_forward = backbone(x)
    with torch.no_grad():
        cached_forward = backbone(x)
        merged_forward = svf.merge(backbone)(x)
    for stage, ref in reference.items():
        assert rel_err(training_forward[stage].detach(), ref) < 1e-5, stage
        assert rel_err(cached_forward[stage], ref) < 1e-5, stage
        assert rel_err(merged_forward[stage], ref) < 1e-5, stage
    assert not any(isinstance(m, svf.SVDConv2d) for m in backbone.modules())


def test_ranks_follow_the_ratio_without_multiples_of_4():
    model = svf.resolver(build_backbone("resnet50").layer0)  # stem conv1: 64 x 27
    assert model.conv1.rank == 27 and model.conv2.rank == 64
    small = svf.resolver(small_model(), global_low_rank_ratio=0.3)
    assert small[0].rank == round(0.3 * 8)  # min(8, 27) = 8 -> 2.4 -> 2
    assert small[2][1].rank == 1  # per group: min(4, 36) = 4 -> 1.2 -> 1
    assert small[5].rank == 2


def test_excluded_customised_and_skips():
    model = svf.resolver(small_model(), excluded_layers=("2",),
                         customized_layers_low_rank_ratio={"5": 0.5})
    assert type(model[2][0]) is nn.Conv2d and type(model[2][1]) is nn.Conv2d
    assert isinstance(model[0], svf.SVDConv2d) and model[5].rank == 3  # 2.5 rounds up
    model = svf.resolver(small_model(), skip_1x1=True)
    assert type(model[2][0]) is nn.Conv2d and type(model[5]) is nn.Linear
    assert isinstance(model[2][1], svf.SVDConv2d)
    model = svf.resolver(small_model(), skip_3x3=True)
    assert type(model[0]) is nn.Conv2d and isinstance(model[2][0], svf.SVDConv2d)


def test_only_plain_conv_and_linear_are_replaced():
    model = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2), "fc": nn.Linear(8, 8)})
    svf.resolver(model)
    assert type(model["attn"].out_proj) is not svf.SVDLinear  # MHA reads its weight directly
    assert isinstance(model["fc"], svf.SVDLinear)
    q = torch.randn(3, 1, 8)
    model["attn"](q, q, q)


@pytest.mark.parametrize("ratio", [0, 1.5, -0.2, "1", True])
def test_ratio_outside_0_1_is_rejected(ratio):
    with pytest.raises(ValueError, match=r"global_low_rank_ratio must be a number in \(0, 1\]"):
        svf.resolver(small_model(), global_low_rank_ratio=ratio)


def test_bad_layer_options_are_rejected():
    with pytest.raises(ValueError, match=r"customized_layers_low_rank_ratio\['5'\] must be"):
        svf.resolver(small_model(), customized_layers_low_rank_ratio={"5": 2})
    with pytest.raises(ValueError, match="excluded_layers: no module named 'layer9'"):
        svf.resolver(small_model(), excluded_layers=["layer9"])


def test_wrapped_model_stays_on_its_dtype_and_is_resolved_in_place():
    model = small_model().double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    expected = model(x)
    wrapper = nn.DataParallel(model)
    resolved = svf.resolver(wrapper, excluded_layers=("module.5",))
    assert resolved is model and type(model[5]) is nn.Linear
    assert model[0].U.dtype == torch.float64 and model[0].U.device == x.device
    assert rel_err(resolved(x), expected) < 1e-12
    merged = svf.merge(nn.DataParallel(model))
    assert merged is model and type(model[0]) is nn.Conv2d
    assert rel_err(merged(x), expected) < 1e-12


def test_a_bare_layer_is_resolved_and_merged():
    conv = nn.Conv2d(3, 4, 3)
    layer = svf.resolver(conv)
    assert isinstance(layer, svf.SVDConv2d)
    assert type(svf.merge(layer)) is nn.Conv2d
