"""A trained model for inference, from any checkpoint: best.pth (dense, merged), last.pth
(training state, rebuilt the way its run built it) or a converted published file. The
checkpoint's model keys win over the config's (a command-line conflict is one line), its fold
must be the config's, and referenced weight files must be unchanged. SVD layers are merged, so
inference costs what the dense network costs."""
import os

import svf
from engine.checkpoint import TRAINING, config_for_checkpoint, load_checkpoint, load_model_weights
from engine.model_state import check_references, restore_training_state
from model.registry import build_model
from util.data.folds import get_fold
from util.seeding import seed_everything


def resolve_weight(cfg):
    path = cfg.weight or os.path.join(cfg.exp_path, "snapshot", "best.pth")
    if not os.path.isfile(path):
        how = "set weight=PATH" if cfg.weight else "train this configuration first (train.py) or set weight=PATH"
        raise FileNotFoundError(f"{path}: checkpoint not found; {how}")
    return path


def _build_cfg(cfg, refs):
    """The config to build with: weight files as the checkpoint references them, none else."""
    return cfg.replace(pretrained=refs.get("pretrained", {}).get("path", ""),
                       **{key: ref["path"] for key, ref in refs.items() if key != "pretrained"})


def _from_training_state(cfg, fold, ckpt, weight):
    refs = ckpt.get("references", {})
    check_references(refs, weight)
    seed_everything(ckpt["config"]["seed"])  # frozen random weights are rebuilt from the run's seed
    model, _ = build_model(_build_cfg(cfg, refs), fold)
    restore_training_state(model, ckpt, weight)
    return model


def _from_inference_state(cfg, fold, ckpt, weight):
    refs = ckpt.get("references", {})
    check_references(refs, weight)
    model, _ = build_model(_build_cfg(cfg, refs), fold, load_weights=bool(refs), finetune=False)
    if ckpt.get("backbone_frozen"):
        model.backbone_frozen()
    load_model_weights(model, ckpt, weight, loaded_prefixes=tuple(model.referenced_parts) if refs else ())
    return model


def load_trained_model(cfg, device):
    """(model in eval mode on `device`, the config as the checkpoint defines it, its Fold, the
    checkpoint's path)."""
    weight = resolve_weight(cfg)
    ckpt = load_checkpoint(weight)
    cfg = config_for_checkpoint(cfg, ckpt, weight)
    fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
    build = _from_training_state if ckpt["kind"] == TRAINING else _from_inference_state
    model = build(cfg, fold, ckpt, weight)
    svf.merge(model)
    return model.to(device).eval(), cfg, fold, weight
