"""Evaluation behind test.py: every seed of `test_seeds`, `test_num` episodes each.

Prints mIoU, FB-IoU and per-class IoU per seed, then the mean and the standard deviation over
the seeds (population std, ddof=0), writes them to result/test_<weight>-<time>.json (one record
per test; NaN is written as null), and ends with one line:
`<dataset> fold <k>: mIoU xx.xx, all-foreground yy.yy` (percent, as papers print them). A fold
class without an episode is a warning in the log and the record (`miou_missing` says how it
counts). One progress bar covers every seed; `visualize=N` writes pictures of the first N
episodes of every seed next to the record (engine/pictures.py).
"""
import glob
import os

import numpy as np

from engine.eft import test_time_adaptation
from engine.evaluate import ALL_FOREGROUND, evaluate, evaluator_factory
from engine.inference import load_trained_model, resolve_weight
from engine.inputs import check_inputs
from engine.loaders import build_dataset, build_loader
from engine.logger import get_logger
from engine.pictures import EpisodePictures
from engine.progress import TestProgress
from engine.run_dir import stamped
from engine.runtime import Runtime
from util.fileio import atomic_write_json
from util.seeding import seed_everything


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


def record_stem(cfg):
    """test_<weight's stem>: the records of a test of cfg are result/<stem>-<time>.json."""
    weight = cfg.weight or os.path.join(cfg.exp_path, "snapshot", "best.pth")
    return "test_" + os.path.splitext(os.path.basename(weight))[0]


def new_record_path(cfg):
    """Where a test of cfg writes its record: result/test_<weight's stem>-<time>.json."""
    return stamped(os.path.join(cfg.exp_path, "result"), record_stem(cfg), "json")


def records_of(cfg):
    """The records test.py wrote for cfg's weight, newest first."""
    paths = glob.glob(os.path.join(cfg.exp_path, "result", glob.escape(record_stem(cfg)) + "-*.json"))
    return sorted(paths, key=os.path.getmtime, reverse=True)


def missing_class_warning(seed, name, result):
    """One warning line for the fold classes without an episode (None when there are none)."""
    if not result.get("missing_classes"):
        return None
    how = "count 0 in mIoU" if result["missing_rule"] == "zero" else "are left out of mIoU"
    return (f"WARNING seed {seed} {name}: no episode of fold classes {result['missing_classes']}; "
            f"they {how} (miou_missing={result['missing_rule']}); raise test_num")


def episode_pictures(cfg, model, record_path, seed, main):
    """EpisodePictures writing `visualize` episodes of `seed` into <record>/seed<seed>/ (the
    record's path without .json; the main process's share under DDP), or None."""
    if not cfg.visualize or not main or model.task != "episodes":
        return None
    return EpisodePictures(cfg.visualize, os.path.join(os.path.splitext(record_path)[0], f"seed{seed}"))


def run_test(cfg):
    check_inputs(cfg, training=False)
    resolve_weight(cfg)
    rt = Runtime(cfg)
    main = rt.dist.is_main
    seed_everything(cfg.seed)
    model, cfg, fold, weight = load_trained_model(cfg, rt.device)
    result_dir = os.path.join(cfg.exp_path, "result")
    log = get_logger(stamped(result_dir, "test", "log"), main)
    new_evaluator = evaluator_factory(model, fold, cfg)
    adapt = test_time_adaptation(model, cfg)  # None unless eft=true (docs/eft.md)
    # The base learner's val set is every val image with a deterministic resize: one pass.
    seeds = cfg.test_seeds if model.task == "episodes" else cfg.test_seeds[:1]
    log.info(f"testing {weight}: {cfg.arch} on {cfg.backbone}, {cfg.shot}-shot, {cfg.dataset} fold "
             f"{cfg.split}, {cfg.test_num} episodes x {len(seeds)} seeds, ori_resize={cfg.ori_resize}")
    record_path = new_record_path(cfg.replace(weight=weight))
    per_seed, warnings, progress = [], [], None
    for seed in seeds:
        dataset = build_dataset(cfg, fold, model.task, "val", seed)
        loader = build_loader(dataset, cfg.batch_size_val, False, seed, rt.dist, cfg.workers,
                              rt.device.type == "cuda")
        progress = progress or TestProgress(len(seeds), len(loader), main)
        on_batch = [progress]
        pictures = episode_pictures(cfg, model, record_path, seed, main)
        if pictures:
            on_batch.append(pictures)
        results, seconds = evaluate(model, loader, rt, new_evaluator, on_batch, adapt)
        per_seed.append({"seed": seed, "results": results, "seconds": seconds})
        if adapt:
            per_seed[-1]["eft"] = adapt.seed_done(seed, results, log)
        if pictures:
            log.info(f"seed {seed}: {len(pictures.written)} episode pictures in {pictures.out_dir}")
        for name, r in results.items():
            extra = f"  FB-IoU {r['fbiou']:.4f}" if "fbiou" in r else ""
            log.info(f"seed {seed} {name}: mIoU {r['miou']:.4f}{extra}  per class: {class_line(r)}")
            warning = missing_class_warning(seed, name, r)
            if warning and name != ALL_FOREGROUND:
                warnings.append(warning)
                log.warning(warning)
        log.info(f"seed {seed}: {len(dataset)} samples in {seconds:.1f}s")
    progress.close()
    summary = summarise(per_seed)
    for name, s in summary.items():
        fb = f"  FB-IoU {s['fbiou']['mean']:.4f} ± {s['fbiou']['std']:.4f}" if "fbiou" in s else ""
        log.info(f"mean over {len(seeds)} seeds, {name}: mIoU {s['miou']['mean']:.4f} ± {s['miou']['std']:.4f}{fb}")
    eft_record = {"eft": adapt.finish(summary, per_seed, log)} if adapt else {}
    if main:
        record = {"weight": weight, "config": cfg.to_dict(), "per_seed": per_seed, "summary": summary,
                  "warnings": warnings, **eft_record}
        atomic_write_json(record_path, record, indent=1)
        log.info(f"results written to {record_path}")
    final = 100 * summary["logits"]["miou"]["mean"]
    where = f"{cfg.exp_name_or_dataset} fold {cfg.split}"
    if ALL_FOREGROUND in summary:
        floor = 100 * summary[ALL_FOREGROUND]["miou"]["mean"]
        log.info(f"{where}: mIoU {final:.2f}, all-foreground {floor:.2f}")
    else:
        log.info(f"{where} base learner: mIoU {final:.2f} over the base classes")
    return summary
