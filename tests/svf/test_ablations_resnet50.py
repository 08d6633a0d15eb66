"""The paper's ablation modes on ResNet-50 layer2-4: the exact trainable names and counts
(full rank; the counts of the SVF supplement's settings, computed from the architecture)."""
import pytest
import torch

import svf
from model.backbone import build_backbone

BLOCKS = {"layer2": 4, "layer3": 6, "layer4": 3}


def block_names(*parts, downsample=None):
    """layerN.B.part for every bottleneck of layer2-4, plus layerN.0.<downsample>."""
    found = {f"{stage}.{b}.{p}" for stage, count in BLOCKS.items() for b in range(count)
             for p in parts}
    if downsample:
        found |= {f"{stage}.0.downsample.{downsample}" for stage in BLOCKS}
    return found


BN = {f"{n}.{part}" for n in block_names("bn1", "bn2", "bn3", downsample="1")
      for part in ("weight", "bias")}
POINTWISE = block_names("conv1", "conv3", downsample="0")
CASES = {  # id -> (finetune keyword arguments, trainable names, trainable count)
    "partial 3x3": (dict(mode="partial", kernels="3x3"), {f"{n}.weight" for n in block_names("conv2")},
                    11_206_656),
    "partial 1x1 (downsample included)": (dict(mode="partial", kernels="1x1"),
                                          {f"{n}.weight" for n in POINTWISE}, 12_025_856),
    "svf 3x3": (dict(mode="svf", kernels="3x3"), {f"{n}.S" for n in block_names("conv2")}, 3_584),
    # one decomposition checks both options: S and S' (2 x 8,960) and BatchNorm (50,176)
    "svf 1x1, S and S', with BatchNorm": (
        dict(mode="svf", kernels="1x1", param="exp_both", train_bn=True),
        {f"{n}.{f}" for n in POINTWISE for f in ("S", "S_delta")} | BN, 2 * 8_960 + 50_176),
}


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return build_backbone("resnet50").eval()


@pytest.mark.parametrize("case", list(CASES))
def test_trainable_names_and_counts(resnet50, case):
    kwargs, names, count = CASES[case]
    summary = svf.finetune(resnet50, **kwargs)
    trainable = {n: p.numel() for n, p in resnet50.named_parameters() if p.requires_grad}
    assert set(trainable) == names
    assert sum(trainable.values()) == summary.trainable == count
    assert summary.per_stage["layer0"][0] == summary.per_stage["layer1"][0] == 0


def test_rotation_trains_one_scale_per_output_channel(resnet50, monkeypatch):
    # What trains does not depend on R, and drawing the 2048 x 2048 ones takes seconds:
    # identity matrices here; tests/svf/test_rotation.py checks the drawn R.
    monkeypatch.setattr(svf.rotation, "random_rotation",
                        lambda size, generator: torch.eye(size, dtype=torch.float64))
    summary = svf.finetune(resnet50, "rotation")
    trainable = {n for n, p in resnet50.named_parameters() if p.requires_grad}
    layers = block_names("conv1", "conv2", "conv3", downsample="0")
    assert trainable == {f"{n}.scale" for n in layers}
    assert summary.trainable == 25_088  # = the output channels of layer2-4's convs
    rotations = {n: b for n, b in resnet50.named_buffers() if n.endswith(".rotation")}
    assert set(rotations) == {f"{n}.rotation" for n in layers}
    assert rotations["layer4.0.downsample.0.rotation"].shape == (1, 2048, 2048)
    assert rotations["layer2.1.conv2.rotation"].shape == (1, 128, 128)
