"""Every input a run needs from its machine, checked before anything heavy starts (the files it
reads, a writable output folder, the device): all problems are reported together, in one line."""
import os
import shutil

import torch

from model.backbone import fill_path, pretrained_path
from model.registry import ARCHS

MIN_FREE_MB = 50


class InputError(ValueError):
    """Something a run needs is missing or unusable (the message lists every problem)."""

BASE_LEARNER_COMMAND = "sh train.sh {dataset} split{split} {backbone} base"


def input_problems(cfg, training):
    """What is missing among the files `cfg` points at (a list of phrases, empty when all is
    there). `training`: the run builds its model from weight files (pretrained backbone, BAM's
    base learner) and reads the train list; a test loads everything from its checkpoint."""
    problems = _machine_problems(cfg)
    if not os.path.isdir(cfg.data_root):
        problems.append(f"data_root {cfg.data_root} is not a directory")
    lists = (("train_list", cfg.train_list), ("val_list", cfg.val_list)) if training else (("val_list", cfg.val_list),)
    for key, path in lists:
        if not os.path.isfile(path):
            problems.append(f"{key} {path} does not exist")
    if not training:
        return problems
    path = pretrained_path(cfg)
    if path:
        if not os.path.isfile(path):
            problems.append(f"pretrained {path} does not exist (initmodel/README.md lists where to get it)")
    for key in ARCHS[cfg.arch].model.referenced_parts.values():  # BAM's and MSANet's base learner
        path = fill_path(cfg, key) if getattr(cfg, key) else ""
        if not os.path.isfile(path):
            command = BASE_LEARNER_COMMAND.format(dataset=cfg.exp_name_or_dataset, split=cfg.split,
                                                  backbone=cfg.backbone)
            problems.append(f"{key} {path or repr('')}: {cfg.arch}'s base learner is missing; train it "
                            f"first with: {command}")
    return problems


def _existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _machine_problems(cfg):
    problems = []
    if not torch.cuda.is_available():
        if cfg.device == "cuda":
            problems.append("device=cuda but torch sees no CUDA device (use device=cpu or auto)")
        elif cfg.amp != "off":
            problems.append(f"amp={cfg.amp} needs CUDA, which this machine lacks (use amp=off)")
    folder = _existing_parent(cfg.exp_path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        problems.append(f"exp_dir {cfg.exp_dir}: {folder} is not a writable folder")
    elif shutil.disk_usage(folder).free < MIN_FREE_MB * 2 ** 20:
        problems.append(f"exp_dir {cfg.exp_dir}: only {shutil.disk_usage(folder).free / 2 ** 20:.0f} MB "
                        f"free on {folder}")
    return problems


def check_inputs(cfg, training):
    """Raise one InputError listing every problem of input_problems."""
    problems = input_problems(cfg, training)
    if problems:
        raise InputError("; ".join(problems))
