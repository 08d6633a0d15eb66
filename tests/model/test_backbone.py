"""Backbones: stage shapes and channels, PFENet's dilation rule, strict loading of public files,
the per-block taps (with every fine-tuning mode)."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import svf
from model.backbone import BACKBONES, build_backbone
from tools.exactness import randomise_batchnorm

BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def v2_resnet_public_keys(blocks=(3, 4, 6, 3), deep_stem=True):
    """The key names of PSPNet's resnet50_v2.pth / torchvision's resnet50 file, written out
    from the architecture (not from our module), classifier included."""
    keys = []
    stem = (1, 2, 3) if deep_stem else (1,)
    for i in stem:
        keys.append(f"conv{i}.weight")
        keys += [f"bn{i}.{k}" for k in BN_KEYS]
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for i in (1, 2, 3):
                keys.append(f"{prefix}.conv{i}.weight")
                keys += [f"{prefix}.bn{i}.{k}" for k in BN_KEYS]
            if block == 0:
                keys.append(f"{prefix}.downsample.0.weight")
                keys += [f"{prefix}.downsample.1.{k}" for k in BN_KEYS]
    return keys + ["fc.weight", "fc.bias"]


def vgg16_bn_public_keys():
    convs = (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40)
    keys = []
    for i in convs:
        keys += [f"features.{i}.weight", f"features.{i}.bias"]
        keys += [f"features.{i + 1}.{k}" for k in BN_KEYS]
    for i in (0, 3, 6):
        keys += [f"classifier.{i}.weight", f"classifier.{i}.bias"]
    return keys


def to_public_names(backbone, public_keys):
    """Our backbone's weights under the public key names (what an upstream file holds)."""
    ours = backbone.state_dict()
    public = {}
    for key in public_keys:
        mapped = backbone.upstream_key(key)
        public[key] = torch.randn(3) if mapped is None else ours[mapped].clone()
    return public


@pytest.mark.parametrize("name, stem, out_hw", [
    ("resnet50", 128, 13), ("resnet101", 128, 13), ("resnet50_tv", 64, 13),
    ("resnet101_tv", 64, 13), ("vgg16", 64, 7)])
def test_stage_shapes_and_channels(name, stem, out_hw):
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 97, 97))
    assert list(feats) == ["layer0", "layer1", "layer2", "layer3", "layer4"]
    assert backbone.channels["layer0"] == stem
    for stage, feat in feats.items():
        assert feat.shape[1] == backbone.channels[stage]
    assert feats["layer4"].shape[-1] == out_hw
    if name == "vgg16":
        assert [backbone.channels[s] for s in feats] == [64, 128, 256, 512, 512]
        assert feats["layer2"].shape[-1] == 13  # finer than layer3: the meta-learner resizes it
    else:
        assert [backbone.channels[s] for s in list(feats)[1:]] == [256, 512, 1024, 2048]
        assert feats["layer2"].shape[-1] == feats["layer3"].shape[-1] == out_hw


def test_output_stride_8_at_473():
    backbone = build_backbone("resnet50_tv").eval()
    x = torch.randn(1, 3, 473, 473)
    with torch.no_grad():
        x = backbone.layer1(backbone.layer0(x))
        x = backbone.layer2(x)
    assert x.shape[-2:] == (60, 60)


@pytest.mark.parametrize("name", ["resnet50", "resnet50_tv"])
def test_pfenet_dilation_rule(name):
    backbone = build_backbone(name)
    for stage, dilation in (("layer3", 2), ("layer4", 4)):
        for n, m in getattr(backbone, stage).named_modules():
            if n.endswith("conv2"):
                assert (m.dilation, m.padding, m.stride) == ((dilation,) * 2, (dilation,) * 2,
                                                              (1, 1))
            if n.endswith("downsample.0"):
                assert m.stride == (1, 1)
    assert backbone.layer2[0].conv2.stride == (2, 2)  # the stride sits on the 3x3 conv
    assert backbone.layer2[0].conv1.stride == (1, 1)


@pytest.mark.parametrize("name, public_keys", [
    ("resnet50", v2_resnet_public_keys()),
    ("resnet50_tv", v2_resnet_public_keys(deep_stem=False)),
    ("vgg16", vgg16_bn_public_keys())])
def test_public_key_names_map_one_to_one(name, public_keys):
    backbone = build_backbone(name)
    mapped = {backbone.upstream_key(k) for k in public_keys} - {None}
    ours = {k for k in backbone.state_dict() if not k.endswith("num_batches_tracked")}
    assert mapped == ours


@pytest.mark.parametrize("name, public_keys, wrap", [
    ("resnet50", v2_resnet_public_keys(), "state_dict"),
    ("resnet50_tv", v2_resnet_public_keys(deep_stem=False), None),
    ("vgg16", vgg16_bn_public_keys(), "model")])
def test_public_file_loads_unchanged(tmp_path, name, public_keys, wrap):
    torch.manual_seed(0)
    source = build_backbone(name).eval()
    randomise_batchnorm(source, torch.Generator().manual_seed(0))
    public = to_public_names(source, public_keys)  # old files: no num_batches_tracked
    if wrap:
        public = {wrap: {"module." + k: v for k, v in public.items()}}
    path = tmp_path / "weights.pth"
    torch.save(public, path)
    loaded = build_backbone(name, pretrained=str(path)).eval()
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        assert torch.equal(source(x)["layer4"], loaded(x)["layer4"])


def _save_public(tmp_path, edit):
    backbone = build_backbone("resnet50")
    public = to_public_names(backbone, v2_resnet_public_keys())
    edit(public)
    path = tmp_path / "bad.pth"
    torch.save(public, path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("layer2.0.conv1.weight"), "missing keys layer2.0.conv1.weight"),
    (lambda sd: sd.update({"layer5.0.conv1.weight": torch.zeros(1)}),
     "unexpected keys layer5.0.conv1.weight"),
    (lambda sd: sd.update({"conv1.weight": torch.zeros(64, 3, 7, 7)}),
     "wrong shapes (file vs model) layer0.conv1.weight (64, 3, 7, 7) vs (64, 3, 3, 3)")])
def test_strict_loading_errors(tmp_path, edit, message):
    path = _save_public(tmp_path, edit)
    with pytest.raises(ValueError) as info:
        build_backbone("resnet50", pretrained=path)
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_torchvision_file_does_not_fit_v2(tmp_path):
    tv = build_backbone("resnet50_tv")
    path = tmp_path / "tv.pth"
    torch.save(to_public_names(tv, v2_resnet_public_keys(deep_stem=False)), path)
    with pytest.raises(ValueError, match="missing keys layer0.bn2.bias"):
        build_backbone("resnet50", pretrained=path)


def test_missing_file_points_at_initmodel_readme(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth.*initmodel/README\.md"):
        build_backbone("resnet50", pretrained=tmp_path / "nowhere.pth")


def test_non_tensor_file_is_rejected(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ValueError, match="expected a state dict of tensors"):
        build_backbone("vgg16", pretrained=path)


def test_unknown_backbone_name():
    with pytest.raises(ValueError, match="unknown backbone 'resnet18'.*resnet50, resnet101"):
        build_backbone("resnet18")
    assert set(tuple(BACKBONES)) == {"resnet50", "resnet101", "resnet50_tv", "resnet101_tv",
                                   "vgg16"}


def test_no_torchvision_import():
    code = "import sys, model.backbone; assert 'torchvision' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"conv1.weight": torch.zeros(1), "layer": nn.ReLU()}, path)
    with pytest.raises(ValueError, match=r"object.pth: not a readable pretrained weight file .*\(it holds Python objects"):
        build_backbone("resnet50", pretrained=path)


def all_taps(backbone, x):
    """{stage: taps}, and whether every stage's output equals the plain stage call."""
    taps, same = {}, True
    for stage in backbone.stages:
        out, taps[stage] = backbone.stage_with_taps(stage, x)
        same = same and torch.equal(out, getattr(backbone, stage)(x))
        x = out
    return taps, same


@pytest.mark.parametrize("name, counts, levels", [
    ("resnet50", [0, 3, 4, 6, 3], [("layer2", "taps"), ("layer3", "taps"), ("layer4", "taps")]),
    ("resnet101", [0, 3, 4, 23, 3], [("layer2", "taps"), ("layer3", "taps"), ("layer4", "taps")]),
    ("vgg16", [2, 2, 3, 3, 3], [("layer3", "taps"), ("layer4", "taps"), ("layer4", "output")])])
def test_taps_come_from_the_same_pass(name, counts, levels):
    backbone = build_backbone(name).eval()
    randomise_batchnorm(backbone, torch.Generator().manual_seed(0))
    with torch.no_grad():
        taps, same = all_taps(backbone, torch.randn(1, 3, 49, 49))
        assert same and [len(taps[s]) for s in backbone.stages] == counts
        assert [backbone.tap_count(s) for s in backbone.stages] == counts
        assert list(backbone.hyper_levels) == levels
        x = backbone.layer2(backbone.layer1(backbone.layer0(torch.randn(1, 3, 49, 49))))
        stage = backbone.layer3
        _, taps3 = backbone.stage_with_taps("layer3", x)
        if name == "vgg16":  # each conv's output, before its BatchNorm
            assert torch.equal(taps3[0], stage[0](x)) and torch.equal(taps3[1], stage[3](stage[2](stage[1](taps3[0]))))
        else:  # each bottleneck's residual sum, before its last ReLU
            block = stage[0]
            inner = F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x))))))
            assert torch.equal(taps3[0], block.bn3(block.conv3(inner)) + block.downsample(x))
            assert (taps3[0] < 0).any()
            assert torch.equal(F.relu(taps3[-1]), backbone.layer3(x))


@pytest.mark.parametrize("name, mode", [("resnet50", "svf"), ("resnet50", "scale_in"), ("resnet50", "bn"),
                                        ("vgg16", "svf"), ("vgg16", "scale_out"), ("vgg16", "partial")])
def test_taps_survive_the_fine_tuning_modes(name, mode):
    backbone = build_backbone(name).eval()
    x = torch.randn(1, 3, 41, 41)
    with torch.no_grad():
        before, _ = all_taps(backbone, x)
    svf.finetune(backbone, mode, layers=("layer4",))  # one stage keeps the SVD step short
    with torch.no_grad():
        after, same = all_taps(backbone, x)
        layer3 = backbone.layer3(backbone.layer2(backbone.layer1(backbone.layer0(x))))
    assert same
    for stage, taps in before.items():
        assert len(after[stage]) == len(taps)
        for old, new in zip(taps, after[stage]):  # SVD layers at full rank: the dense network
            assert torch.allclose(new, old, rtol=1e-4, atol=1e-4 * old.abs().max().item())
    backbone.stage_with_taps("layer4", layer3)[1][0].sum().backward()  # taps carry gradients
    assert any(p.grad is not None for p in backbone.layer4.parameters() if p.requires_grad)
