"""python -m tools.bench_train: training steps per second of the real models, with each
throughput candidate of tools/train_candidates.py on its own (and all the promising ones
combined), interleaved in one run so that machine noise hits them alike.

    python -m tools.bench_train --device cuda      # resnet50 svf, 473 px, batch 8, 1-shot
    python -m tools.bench_train --size 65 --batch 2 --repeats 2   # a quick CPU check

Per arch (--archs, default baseline and bam): the model as train.py builds it (mode svf on
resnet50, random init; BAM with a random base learner), the backbone's BatchNorm frozen as
fix_bn does, SGD from engine.optim, one synthetic batch of episodes copied from the host at
every step. Every round runs --steps steps of each candidate back to back, with no sync in
between (as training runs), so a per-step host sync shows. Prints per candidate the median
ms per step, iterations per second, the median per-round ratio to the baseline and memory
(CUDA: peak allocated during a step; CPU: bytes autograd saves in the forward), then one line
per arch: `ratios <arch>: <candidate>=<time ratio> ...` (below 1 is faster).
"""
import contextlib
import copy

import torch

from engine.choices import load_config
from engine.optim import build_optimizer, optimizer_step
from engine.runtime import AMP_DTYPES, freeze_batchnorm
from model.registry import build_model
from tools.timing import (cuda_peak_bytes, median_ms, median_ratio, run_with_threads,
                          saved_tensor_bytes, time_interleaved)
from tools.train_candidates import (CANDIDATES, applicable, host_batch, loss_is_finite,
                                    options, prepare)
from util.cli import command_parser, run_main
from util.data.folds import get_fold
from util.fileio import REPO_ROOT

CONFIG = f"{REPO_ROOT}/config/pascal_split0.yaml"


def synthetic_batch(fold, batch, shot, size, seed=0):
    """A batch of random episodes of the fold's base classes (training draws base classes)."""
    g = torch.Generator().manual_seed(seed)
    query_mask = torch.randint(0, 2, (batch, size, size), generator=g)
    query_mask[:, : size // 8] = 255
    base = torch.tensor(fold.base)
    return {"query_img": torch.randn(batch, 3, size, size, generator=g),
            "support_imgs": torch.randn(batch, shot, 3, size, size, generator=g),
            "query_mask": query_mask,
            "support_masks": torch.randint(0, 2, (batch, shot, size, size), generator=g),
            "class_id": base[torch.randint(len(base), (batch,), generator=g)]}


class TrainingSetup:
    """One model, optimizer and host batch with a candidate's changes; step() is one training
    iteration as engine/trainer.py runs it."""

    def __init__(self, cfg, model, batch, candidate, device):
        changes = options(candidate, device)
        self.model = prepare(copy.deepcopy(model), changes)
        self.model.train()
        freeze_batchnorm(self.model.backbone)
        self.optimizer = build_optimizer(self.model, cfg)
        if "fused_sgd" in changes:
            groups = [{k: v for k, v in g.items() if k not in ("foreach", "fused")}
                      for g in self.optimizer.param_groups]
            self.optimizer = torch.optim.SGD(groups, lr=cfg.base_lr, fused=True)
        amp = "bf16" if "bf16" in changes else "fp16" if "fp16" in changes else "off"
        self.amp_dtype = AMP_DTYPES[amp]
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.batch = host_batch(batch, changes)
        self.non_blocking = "pinned_non_blocking" in changes
        self.sync_every_step = "sync_every_step" in changes
        self.device = device

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def forward_loss(self):
        batch = {k: v.to(self.device, non_blocking=self.non_blocking)
                 for k, v in self.batch.items()}
        with self.autocast():
            return self.model.loss(self.model(batch), batch)[0]

    def step(self):
        loss = self.forward_loss()
        optimizer_step(self.optimizer, loss, self.scaler)
        if self.sync_every_step:
            loss_is_finite(loss)

    def steps(self, count):
        for _ in range(count):
            self.step()

    def memory(self):
        if self.device.type == "cuda":
            return cuda_peak_bytes(self.step, self.device)
        return saved_tensor_bytes(self.forward_loss, self.model.parameters())


def bench_arch(arch, args, device):
    """Time every candidate for one arch; prints its table and returns {candidate: ratio}."""
    cfg = load_config(CONFIG, [f"arch={arch}", "mode=svf", "pretrained=", f"shot={args.shot}",
                               f"train_size={args.size}", f"batch_size={args.batch}"])
    fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
    batch = synthetic_batch(fold, args.batch, args.shot, args.size)
    names = [c for c in args.candidates if applicable(c, device)]
    torch.manual_seed(0)
    model = build_model(cfg, fold, load_weights=False)[0].to(device)
    setups = {name: TrainingSetup(cfg, model, batch, name, device) for name in names}
    del model
    jobs = {name: (lambda s=s: s.steps(args.steps)) for name, s in setups.items()}
    times = time_interleaved(jobs, device, args.warmup, args.repeats)
    times = {name: [t / args.steps for t in ts] for name, ts in times.items()}
    memory = {name: s.memory() for name, s in setups.items()}
    label = "peak MB" if device.type == "cuda" else "saved MB"
    print(f"{arch}: resnet50 svf, {args.size} px, batch {args.batch}, {args.shot}-shot, {device}"
          f", {args.steps} steps x {args.repeats} interleaved rounds (median)")
    print(f"  {'candidate':<21} {'ms/step':>9} {'it/s':>7} {'vs base':>8} {label:>9} "
          f"{'vs base':>8}  what it changes")
    ratios = {}
    for name in names:
        ratios[name] = median_ratio(times, name, "baseline")
        ms = median_ms(times, name)
        print(f"  {name:<21} {ms:9.1f} {1e3 / ms:7.2f} {ratios[name]:8.3f} "
              f"{memory[name] / 2**20:9.1f} {memory[name] / max(memory['baseline'], 1):8.3f}"
              f"  {CANDIDATES[name][0]}")
    skipped = [c for c in args.candidates if c not in names]
    if skipped:
        print(f"  not run without CUDA: {', '.join(skipped)}")
    print(f"ratios {arch}: " + " ".join(f"{n}={r:.3f}" for n, r in ratios.items()
                                       if n != "baseline"))
    return ratios


def main(argv=None):
    parser = command_parser("tools.bench_train", __doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--archs", nargs="+", default=["baseline", "bam"])
    parser.add_argument("--size", type=int, default=None, help="default 473 cuda, 65 cpu")
    parser.add_argument("--batch", type=int, default=None, help="default 8 cuda, 2 cpu")
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="per round; default 3 cuda, 1 cpu")
    parser.add_argument("--repeats", type=int, default=None, help="rounds; default 10 cuda, 3 cpu")
    parser.add_argument("--warmup", type=int, default=2, help="rounds before timing")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=tuple(CANDIDATES), help="baseline is always run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    args.size = args.size or (473 if cuda else 65)
    args.batch = args.batch or (8 if cuda else 2)
    args.steps = args.steps or (3 if cuda else 1)
    args.repeats = args.repeats or (10 if cuda else 3)
    args.candidates = ["baseline"] + [c for c in args.candidates if c != "baseline"]
    run_with_threads(run, args)


def run(args, device):
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training runs
    for arch in args.archs:
        bench_arch(arch, args, device)


if __name__ == "__main__":
    run_main(main)
