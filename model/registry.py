"""Config -> model: the architecture registry, then the fine-tuning mode on the backbone.

Every architecture registers in ARCHS its model class (a SegmentationModel: the contract of
model/common.py and docs/ARCHITECTURE.md; its `referenced_parts` say which weight files it is
built from) and a builder `fn(cfg, fold, load_weights) -> model`. `fold` is
util.data.folds.Fold; load_weights=False reads no weight file (a full checkpoint follows).
"""
from dataclasses import dataclass
from typing import Callable

import svf
from model.bam import BAM, build_bam
from model.baseline import Baseline, build_baseline
from model.msanet import MSANet, build_msanet
from model.pfenet import PFENet, build_pfenet
from model.pspnet import PSPNet, build_pspnet


@dataclass(frozen=True)
class Arch:
    model: type        # the model class
    build: Callable    # fn(cfg, fold, load_weights) -> model


ARCHS = {"baseline": Arch(Baseline, build_baseline), "pfenet": Arch(PFENet, build_pfenet),
         "bam": Arch(BAM, build_bam), "msanet": Arch(MSANet, build_msanet), "pspnet": Arch(PSPNet, build_pspnet)}


def learnable_outside_backbone(model):
    """Trainable parameters outside `model.backbone` (BAM's and MSANet's frozen base learner
    is not counted): the meta-learner's own size."""
    backbone = {id(p) for p in model.backbone.parameters()}
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in backbone)


class BuildSummary:
    """What build_model reports: svf.finetune's per-stage table (`finetune`) and the learnable
    parameters outside the backbone (`head`); str() is the training log's table."""

    def __init__(self, finetune, head):
        self.finetune, self.head = finetune, head

    def __str__(self):
        return f"{self.finetune}\nlearnable outside the backbone: {self.head:,} parameters"


def build_model(cfg, fold, load_weights=True, finetune=True):
    """Build `cfg.arch` and apply `cfg.mode` to its backbone (finetune=False: the dense model,
    for weights that were merged back). Returns (model, BuildSummary), the summary None
    without finetune."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"arch {cfg.arch!r} is not available; choose one of {', '.join(ARCHS)}")
    model = ARCHS[cfg.arch].build(cfg, fold, load_weights)
    if not finetune:
        return model, None
    finetune = svf.finetune(model.backbone, cfg.mode, layers=tuple(cfg.ft_layers),
                            factors=tuple(cfg.svf_factors), param=cfg.svf_param,
                            rank_ratio=cfg.svf_rank_ratio, kernels=cfg.ft_kernels,
                            train_bn=cfg.ft_bn, rotation_seed=cfg.rotation_seed)
    if finetune.trainable == 0:
        model.backbone_frozen()
    return model, BuildSummary(finetune, learnable_outside_backbone(model))
