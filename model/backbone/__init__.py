"""Backbones with five stages layer0 .. layer4 (docs/ARCHITECTURE.md, docs/svf.md).

    from model.backbone import build_backbone
    backbone = build_backbone("resnet50", pretrained="initmodel/resnet50_v2.pth")
    feats = backbone(images)          # {"layer0": ..., ..., "layer4": ...}
    backbone.channels["layer4"]       # 2048
"""
from pathlib import Path

from util.fileio import REPO_ROOT

from .base import STAGES, StagedBackbone
from .loading import load_pretrained, read_state_dict
from .resnet import Bottleneck, DilatedResNet
from .vgg import VGG16BN

INITMODEL_DIR = Path(REPO_ROOT) / "initmodel"

# name -> (constructor, default weight file in initmodel/): the registry of backbones
BACKBONES = {
    "resnet50": (lambda: DilatedResNet((3, 4, 6, 3), deep_stem=True), "resnet50_v2.pth"),
    "resnet101": (lambda: DilatedResNet((3, 4, 23, 3), deep_stem=True), "resnet101_v2.pth"),
    "resnet50_tv": (lambda: DilatedResNet((3, 4, 6, 3), deep_stem=False), "resnet50_tv.pth"),
    "resnet101_tv": (lambda: DilatedResNet((3, 4, 23, 3), deep_stem=False), "resnet101_tv.pth"),
    "vgg16": (VGG16BN, "vgg16_bn.pth"),
}


def default_weight_path(name):
    """initmodel/<file> that `build_backbone(name, pretrained=True)` reads."""
    _check_name(name)
    return INITMODEL_DIR / BACKBONES[name][1]


def _check_name(name):
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")


def build_backbone(name, pretrained=None):
    """Build backbone `name` (resnet50, resnet101, resnet50_tv, resnet101_tv, vgg16).

    pretrained: None for a randomly initialised backbone, a path to a weight file, or True for
    the default file initmodel/<name's file> (see initmodel/README.md). Loading is strict.
    """
    _check_name(name)
    backbone = BACKBONES[name][0]()
    if pretrained is None or pretrained is False:
        return backbone
    path = default_weight_path(name) if pretrained is True else pretrained
    return load_pretrained(backbone, path, name)


__all__ = ["build_backbone", "default_weight_path", "BACKBONES", "STAGES",
           "StagedBackbone", "DilatedResNet", "Bottleneck", "VGG16BN", "load_pretrained",
           "read_state_dict"]
