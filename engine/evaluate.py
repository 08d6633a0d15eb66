"""Score a model on a loader of val episodes (or base-class images) with engine.metrics.

batch_size_val batches the loading, the forward and the scoring. On the CPU the model still
runs one sample at a time: there larger convolutions only add memory traffic (at 129 px, 16
demo episodes in one forward took 1.17 x as long as one at a time)."""
import time

import torch

from engine.metrics import FewShotEvaluator, SemanticEvaluator
from engine.runtime import to_device

ALL_FOREGROUND = "all_foreground"
CPU_SAMPLES_PER_FORWARD = 1


def _slice(batch, start, stop):
    return {k: v[start:stop] for k, v in batch.items()}


def predict(model, batch, runtime):
    """model(batch)'s "logits*" outputs, the batch split into CPU_SAMPLES_PER_FORWARD-sized
    forwards on the CPU (each sample's output does not depend on the others in eval mode)."""
    size = batch["query_img"].shape[0]
    step = CPU_SAMPLES_PER_FORWARD if runtime.device.type == "cpu" else size
    parts = []
    for start in range(0, size, step):
        with runtime.autocast():
            outputs = model(_slice(batch, start, start + step) if step < size else batch)
        parts.append({k: v for k, v in outputs.items() if k.startswith("logits")})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


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
def evaluate(model, loader, runtime, new_evaluator, on_batch=(), predictor=None):
    """Run every batch once; every output whose key starts with "logits" gets its own evaluator,
    and on episode tasks the trivial all-foreground prediction is scored on the same episodes,
    as a floor to beat. Each of `on_batch` is called as fn(batch, outputs) after a batch is
    scored (a progress bar, engine.pictures.EpisodePictures). predictor(model, batch, runtime)
    -> outputs replaces `predict` (test-time adaptation, engine/eft.py).

    Returns (results: name -> evaluator.result(), seconds). Under DDP every process scores its
    share and the sums are all-reduced, so every process returns the totals."""
    model.eval()
    evaluators = {}
    start = time.time()
    for batch in loader:
        batch = to_device(batch, runtime.device)
        outputs = (predictor or predict)(model, batch, runtime)
        names = sorted(outputs)
        if model.task == "episodes":
            outputs = dict(outputs, **{ALL_FOREGROUND: _all_foreground_logits(batch)})
            names.append(ALL_FOREGROUND)
        for name in names:
            if name not in evaluators:
                evaluators[name] = new_evaluator()
            evaluators[name].update(outputs[name], batch)
        for fn in on_batch:
            fn(batch, outputs)
    for ev in evaluators.values():
        ev.all_reduce()
    return {name: ev.result() for name, ev in evaluators.items()}, time.time() - start
