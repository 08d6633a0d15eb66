"""Every input file a run reads, checked before anything heavy starts: all problems are
reported together, in one line."""
import os

from model.backbone import default_weight_path

BASE_LEARNER_COMMAND = "sh train.sh {dataset} split{split} {backbone} base"


def input_problems(cfg, training):
    """What is missing among the files `cfg` points at (a list of phrases, empty when all is
    there). `training`: the run builds its model from weight files (pretrained backbone, BAM's
    base learner) and reads the train list; a test loads everything from its checkpoint."""
    problems = []
    if not os.path.isdir(cfg.data_root):
        problems.append(f"data_root {cfg.data_root} is not a directory")
    lists = (("train_list", cfg.train_list), ("val_list", cfg.val_list)) if training else (("val_list", cfg.val_list),)
    for key, path in lists:
        if not os.path.isfile(path):
            problems.append(f"{key} {path} does not exist")
    if not training:
        return problems
    if cfg.pretrained:
        path = default_weight_path(cfg.backbone) if cfg.pretrained == "auto" else cfg.pretrained
        if not os.path.isfile(path):
            problems.append(f"pretrained {path} does not exist (initmodel/README.md lists where to get it)")
    if cfg.arch == "bam":
        path = cfg.fill("base_weight") if cfg.base_weight else ""
        if not os.path.isfile(path):
            command = BASE_LEARNER_COMMAND.format(dataset=cfg.exp_name_or_dataset, split=cfg.split,
                                                  backbone=cfg.backbone)
            problems.append(f"base_weight {path or repr('')}: BAM's base learner is missing; train it "
                            f"first with: {command}")
    return problems


def check_inputs(cfg, training):
    """Raise one FileNotFoundError listing every problem of input_problems."""
    problems = input_problems(cfg, training)
    if problems:
        raise FileNotFoundError("; ".join(problems))
