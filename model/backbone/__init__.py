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

# name -> (constructor, default weight file in initmodel/, folder name in BAM's
# initmodel/PSPNet/<dataset>/split<k>/<folder>/ layout): the registry of backbones
BACKBONES = {
    "resnet50": (lambda: DilatedResNet((3, 4, 6, 3), deep_stem=True), "resnet50_v2.pth", "resnet50"),
    "resnet101": (lambda: DilatedResNet((3, 4, 23, 3), deep_stem=True), "resnet101_v2.pth", "resnet101"),
    "resnet50_tv": (lambda: DilatedResNet((3, 4, 6, 3), deep_stem=False), "resnet50_tv.pth", "resnet50_tv"),
    "resnet101_tv": (lambda: DilatedResNet((3, 4, 23, 3), deep_stem=False), "resnet101_tv.pth",
                     "resnet101_tv"),
    "vgg16": (VGG16BN, "vgg16_bn.pth", "vgg"),
}


def default_weight_path(name):
    """initmodel/<file> that `build_backbone(name, pretrained=True)` reads."""
    _check_name(name)
    return INITMODEL_DIR / BACKBONES[name][1]


def pretrained_path(cfg):
    """The weight file cfg.pretrained names: `auto` = the backbone's file in initmodel/, '' =
    none (None), anything else is the path itself."""
    if not cfg.pretrained:
        return None
    return str(default_weight_path(cfg.backbone)) if cfg.pretrained == "auto" else cfg.pretrained


def fill_path(cfg, key):
    """The config's path template `key` (base_weight, best_copy) filled in, {backbone_folder}
    being the backbone's folder in BAM's initmodel/PSPNet layout (`vgg` for vgg16)."""
    _check_name(cfg.backbone)
    return cfg.fill(key, backbone_folder=BACKBONES[cfg.backbone][2])


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


__all__ = ["build_backbone", "default_weight_path", "fill_path", "pretrained_path", "BACKBONES", "STAGES",
           "StagedBackbone", "DilatedResNet", "Bottleneck", "VGG16BN", "load_pretrained",
           "read_state_dict"]
