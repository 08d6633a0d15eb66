"""Score a model on a loader of val episodes (or base-class images) with engine.metrics."""
import time

import torch

from engine.metrics import FewShotEvaluator, SemanticEvaluator
from engine.runtime import to_device

ALL_FOREGROUND = "all_foreground"


def evaluator_factory(model, fold, cfg):
    """A function returning a fresh evaluator of the model's task (cfg: ori_resize, miou_missing)."""
    if model.task == "semantic":
        return lambda: SemanticEvaluator(model.num_classes, ori_resize=cfg.ori_resize)
    return lambda: FewShotEvaluator(fold.novel, ori_resize=cfg.ori_resize, missing=cfg.miou_missing)


def _all_foreground_logits(batch):
    b = batch["query_img"].shape[0]
    logits = torch.zeros(b, 2, 1, 1, device=batch["query_img"].device)
    logits[:, 1] = 1.0
    return logits


@torch.no_grad()
def evaluate(model, loader, runtime, new_evaluator):
    """Run every batch once; every output whose key starts with "logits" gets its own evaluator,
    and on episode tasks the trivial all-foreground prediction is scored on the same episodes,
    as a floor to beat.

    Returns (results: name -> evaluator.result(), seconds). Under DDP every process scores its
    share and the sums are all-reduced, so every process returns the totals."""
    model.eval()
    evaluators = {}
    start = time.time()
    for batch in loader:
        batch = to_device(batch, runtime.device)
        with runtime.autocast():
            outputs = model(batch)
        names = sorted(k for k in outputs if k.startswith("logits"))
        if model.task == "episodes":
            outputs = dict(outputs, **{ALL_FOREGROUND: _all_foreground_logits(batch)})
            names.append(ALL_FOREGROUND)
        for name in names:
            if name not in evaluators:
                evaluators[name] = new_evaluator()
            evaluators[name].update(outputs[name], batch)
    for ev in evaluators.values():
        ev.all_reduce()
    return {name: ev.result() for name, ev in evaluators.items()}, time.time() - start
