"""Config -> model: the architecture registry, then the fine-tuning mode on the backbone.

Every architecture registers a builder `fn(cfg, fold, load_weights) -> SegmentationModel` in
ARCHS (the contract: model/common.py and docs/ARCHITECTURE.md). `fold` is
util.data.folds.Fold; load_weights=False reads no weight file (a full checkpoint follows).
"""
import svf
from model.bam import build_bam
from model.baseline import build_baseline
from model.pfenet import build_pfenet
from model.pspnet import build_pspnet

ARCHS = {"baseline": build_baseline, "pfenet": build_pfenet, "bam": build_bam, "pspnet": build_pspnet}


def build_model(cfg, fold, load_weights=True, finetune=True):
    """Build `cfg.arch` and apply `cfg.mode` to its backbone (finetune=False: the dense model,
    for weights that were merged back).

    Returns (model, summary): summary is svf.finetune's per-stage table of trainable parameters
    (None without finetune)."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"arch {cfg.arch!r} is not available; choose one of {', '.join(ARCHS)}")
    model = ARCHS[cfg.arch](cfg, fold, load_weights)
    if not finetune:
        return model, None
    summary = svf.finetune(model.backbone, cfg.mode, layers=tuple(cfg.ft_layers),
                           factors=tuple(cfg.svf_factors), param=cfg.svf_param,
                           rank_ratio=cfg.svf_rank_ratio, kernels=cfg.ft_kernels,
                           train_bn=cfg.ft_bn, rotation_seed=cfg.rotation_seed)
    if summary.trainable == 0:
        model.backbone_frozen()
    return model, summary
