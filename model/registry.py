"""Config -> model: the architecture registry, then the fine-tuning mode on the backbone.

Every architecture registers a builder `fn(cfg, fold, load_weights) -> SegmentationModel` in
ARCHS (the contract: model/common.py and docs/ARCHITECTURE.md). `fold` is
util.data.folds.Fold; load_weights=False reads no weight file (a full checkpoint follows).
"""
import svf
from model.bam import build_bam
from model.baseline import build_baseline
from model.msanet import build_msanet
from model.pfenet import build_pfenet
from model.pspnet import build_pspnet

ARCHS = {"baseline": build_baseline, "pfenet": build_pfenet, "bam": build_bam, "msanet": build_msanet,
         "pspnet": build_pspnet}


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


def build_model(cfg, fold, load_weights=True):
    """Build `cfg.arch` and apply `cfg.mode` to its backbone. Returns (model, BuildSummary)."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"arch {cfg.arch!r} is not available; choose one of {', '.join(ARCHS)}")
    model = ARCHS[cfg.arch](cfg, fold, load_weights)
    finetune = svf.finetune(model.backbone, cfg.mode, layers=tuple(cfg.ft_layers),
                            factors=tuple(cfg.svf_factors), param=cfg.svf_param,
                            rank_ratio=cfg.svf_rank_ratio)
    if finetune.trainable == 0:
        model.backbone_frozen()
    return model, BuildSummary(finetune, learnable_outside_backbone(model))
