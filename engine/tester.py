"""Evaluation behind test.py: every seed of `test_seeds`, `test_num` episodes each.

Prints mIoU, FB-IoU and per-class IoU per seed, then the mean and the standard deviation over
the seeds (population std, ddof=0), writes them to result/test_<weight>.json, and ends with
one line: `<dataset> fold <k>: mIoU 0.xx, all-foreground 0.yy`.
"""
import json
import os

import numpy as np

import svf
from engine.checkpoint import load_checkpoint, load_model_weights
from engine.evaluate import ALL_FOREGROUND, evaluate, evaluator_factory
from engine.inputs import check_inputs
from engine.loaders import build_dataset, build_loader
from engine.logger import get_logger
from engine.runtime import Runtime
from model.registry import build_model
from util.data.folds import get_fold
from util.fileio import atomic_write_text
from util.seeding import seed_everything


def resolve_weight(cfg):
    path = cfg.weight or os.path.join(cfg.exp_path, "snapshot", "best.pth")
    if not os.path.isfile(path):
        how = "set weight=PATH" if cfg.weight else "train this configuration first (train.py) or set weight=PATH"
        raise FileNotFoundError(f"{path}: checkpoint not found; {how}")
    return path


def load_for_inference(cfg, fold, device):
    """The trained model, its SVD layers merged back into dense ones (plain inference cost)."""
    weight = resolve_weight(cfg)
    ckpt = load_checkpoint(weight)
    model, _ = build_model(cfg, fold, load_weights=False)
    load_model_weights(model, ckpt, weight)
    svf.merge(model)
    return model.to(device).eval(), weight


def class_line(result):
    return "  ".join(f"{c}: {v:.4f}" for c, v in result["class_iou"].items())


def summarise(per_seed):
    """name -> {metric: {mean, std}} over seeds, for mIoU, FB-IoU and every class."""
    out = {}
    for name in per_seed[0]["results"]:
        runs = [s["results"][name] for s in per_seed]
        metrics = {"miou": [r["miou"] for r in runs]}
        if "fbiou" in runs[0]:
            metrics["fbiou"] = [r["fbiou"] for r in runs]
        for c in runs[0]["class_iou"]:
            metrics[f"class_{c}"] = [r["class_iou"].get(c, float("nan")) for r in runs]
        out[name] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in metrics.items()}
    return out


def run_test(cfg):
    check_inputs(cfg, training=False)
    resolve_weight(cfg)
    rt = Runtime(cfg)
    main = rt.dist.is_main
    result_dir = os.path.join(cfg.exp_path, "result")
    log = get_logger(os.path.join(result_dir, "test.log"), main)
    seed_everything(cfg.seed)
    fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
    model, weight = load_for_inference(cfg, fold, rt.device)
    new_evaluator = evaluator_factory(model, fold, cfg.ori_resize)
    # The base learner's val set is every val image with a deterministic resize: one pass.
    seeds = cfg.test_seeds if model.task == "episodes" else cfg.test_seeds[:1]
    log.info(f"testing {weight}: {cfg.arch} on {cfg.backbone}, {cfg.shot}-shot, {cfg.dataset} fold "
             f"{cfg.split}, {cfg.test_num} episodes x {len(seeds)} seeds, ori_resize={cfg.ori_resize}")
    per_seed = []
    for seed in seeds:
        dataset = build_dataset(cfg, fold, model.task, "val", seed)
        loader = build_loader(dataset, cfg.batch_size_val, False, seed, rt.dist, cfg.workers,
                              rt.device.type == "cuda")
        results, seconds = evaluate(model, loader, rt, new_evaluator)
        per_seed.append({"seed": seed, "results": results, "seconds": seconds})
        for name, r in results.items():
            extra = f"  FB-IoU {r['fbiou']:.4f}" if "fbiou" in r else ""
            log.info(f"seed {seed} {name}: mIoU {r['miou']:.4f}{extra}  per class: {class_line(r)}")
            if r.get("missing_classes"):
                log.info(f"  (no episode of classes {r['missing_classes']}; raise test_num)")
        log.info(f"seed {seed}: {len(dataset)} samples in {seconds:.1f}s")
    summary = summarise(per_seed)
    for name, s in summary.items():
        fb = f"  FB-IoU {s['fbiou']['mean']:.4f} ± {s['fbiou']['std']:.4f}" if "fbiou" in s else ""
        log.info(f"mean over {len(seeds)} seeds, {name}: mIoU {s['miou']['mean']:.4f} ± {s['miou']['std']:.4f}{fb}")
    if main:
        record = {"weight": weight, "config": cfg.to_dict(), "per_seed": per_seed, "summary": summary}
        stem = os.path.splitext(os.path.basename(weight))[0]
        path = os.path.join(result_dir, f"test_{stem}.json")
        atomic_write_text(path, json.dumps(record, indent=1, default=str))
        log.info(f"results written to {path}")
    final = summary["logits"]["miou"]["mean"]
    where = f"{cfg.exp_name_or_dataset} fold {cfg.split}"
    if ALL_FOREGROUND in summary:
        log.info(f"{where}: mIoU {final:.2f}, all-foreground {summary[ALL_FOREGROUND]['miou']['mean']:.2f}")
    else:
        log.info(f"{where} base learner: mIoU {final:.2f} over the base classes")
    return summary
