"""Config -> model: the backbone, the architecture, then the fine-tuning mode.

Every architecture registers a builder `fn(cfg, fold, load_weights) -> nn.Module` in ARCHS; the module has a
`backbone` attribute (what `mode` acts on), a `task` ("episodes": 2-way logits scored per
episode, or "semantic": multi-class logits over base classes) and a `loss(outputs, batch)`.
"""
from dataclasses import dataclass

import svf
from model.bam import build_bam
from model.baseline import Baseline
from model.common import backbone_from_config
from model.pfenet import build_pfenet
from model.pspnet import build_pspnet
from util.folds import fold_classes


@dataclass(frozen=True)
class Fold:
    """The fold's class lists (ascending), PROTOCOL.md Folds."""
    base: tuple
    novel: tuple


def _baseline(cfg, fold, load_weights):
    return Baseline(backbone_from_config(cfg, load_weights), shot=cfg.shot, reduce_dim=cfg.reduce_dim)


ARCHS = {"baseline": _baseline, "pfenet": build_pfenet, "pspnet": build_pspnet, "bam": build_bam}


def fold_of(cfg):
    base, novel = fold_classes(cfg.dataset, cfg.split, cfg.use_split_coco)
    return Fold(tuple(base), tuple(novel))


def build_model(cfg, load_weights=True):
    """Build `cfg.arch` and apply `cfg.mode` to its backbone.

    load_weights=False reads no weight file (pretrained backbone, BAM's base learner): the
    caller loads a full checkpoint next.
    Returns (model, summary): summary is svf.finetune's per-stage table of trainable parameters."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"arch {cfg.arch!r} is not available; choose one of {', '.join(sorted(ARCHS))}")
    model = ARCHS[cfg.arch](cfg, fold_of(cfg), load_weights)
    summary = svf.finetune(model.backbone, cfg.mode, layers=tuple(cfg.ft_layers),
                           factors=tuple(cfg.svf_factors), param=cfg.svf_param)
    return model, summary
