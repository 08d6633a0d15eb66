"""python -m tools.bench_eft: the cost of test-time adaptation (test.py eft=true, docs/eft.md)
against the plain test, on synthetic episodes, 1 and 5 shots, timed interleaved in one run.

    python -m tools.bench_eft                      # msanet on resnet50 (svf, merged), CPU, 129 px
    python -m tools.bench_eft --device cuda        # 473 px
    python -m tools.bench_eft --arch bam --mode freeze --size 33 --episodes 1 --repeats 1   # quick
    python -m tools.bench_eft --set eft_s2q_output=final   # S2Q scores the ensemble, as published

The model is built as test.py finds it after an SVF run (random init, SVD layers merged back,
BAM's and MSANet's base learner a dense copy of its own), its classifier's bias shifted so that
about half of the query is predicted foreground: every adaptation round then runs. Per shot it
prints seconds per episode of the plain test and of eft (medians), the ratio of each timed
round (the last line has their median), the rounds run, and what ran per episode, counted
with hooks: backbone passes (one image through layer0 - layer3 of `model.backbone`), layer4
runs (on masked features or whole images), passes of the base learner's own backbone; beside
them the published procedure's counts, from its code (32 backbone passes per 1-shot episode,
216 per 5-shot, MSANet). Last line:
`eft_vs_plain_1shot=R1 eft_vs_plain_5shot=R2 backbone_passes_1shot=N1 backbone_passes_5shot=N2`.
"""
import statistics

import torch

import svf
from engine.choices import load_config
from engine.eft import EpisodeAdaptation
from engine.runtime import Runtime
from model.registry import build_model
from tools.timing import median_ratio, run_with_threads, time_interleaved
from util.cli import command_parser, run_main
from util.data.folds import get_fold
from util.fileio import REPO_ROOT

CONFIG = f"{REPO_ROOT}/config/pascal_split0.yaml"
PUBLISHED_PASSES = {1: 32, 5: 216}  # counted from the published code (MSANet), not timed
COUNTED_STAGES = ("layer0", "layer1", "layer2", "layer3")


class PassCounter:
    """Images through each stage of a backbone, counted by a forward pre-hook on the stage's
    first convolution, which every path through the stage calls (its plain forward and
    stage_with_taps, which runs the blocks without their own hooks)."""

    def __init__(self, backbone):
        self.images = {}
        self.handles = []
        for name in COUNTED_STAGES + ("layer4",):
            first = next(m for m in getattr(backbone, name).modules() if isinstance(m, torch.nn.Conv2d))
            self.handles.append(first.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name):
        def count(module, args):
            self.images[name] = self.images.get(name, 0) + args[0].shape[0]
        return count

    @property
    def passes(self):
        """Images through layer0 - layer3 (the stages agree; the least is taken)."""
        return min(self.images.get(n, 0) for n in COUNTED_STAGES)

    def reset(self):
        self.images = {}

    def remove(self):
        for h in self.handles:
            h.remove()


def synthetic_episode(fold, shot, size, seed):
    """One val-like episode: random images, masks with a rectangle of foreground."""
    g = torch.Generator().manual_seed(seed)

    def mask():
        m = torch.zeros(size, size, dtype=torch.long)
        top, left = torch.randint(0, size // 2, (2,), generator=g).tolist()
        m[top:top + size // 2, left:left + size // 2] = 1
        return m
    return {"query_img": torch.randn(1, 3, size, size, generator=g),
            "support_imgs": torch.randn(1, shot, 3, size, size, generator=g),
            "query_mask": mask()[None], "support_masks": torch.stack([mask() for _ in range(shot)])[None],
            "class_id": torch.tensor([fold.novel[seed % len(fold.novel)]])}


def classifier_bias(model):
    """The foreground bias of the 2-way classifier that decides the final answer."""
    owner = model.head if hasattr(model, "head") else model
    return owner.cls[-1].bias


def bench_model(arch, shot, size, mode="svf", seed=0, overrides=()):
    cfg = load_config(CONFIG, [f"arch={arch}", "backbone=resnet50", f"mode={mode}", f"shot={shot}",
                               "pretrained=", "eft=true", "device=cpu", *overrides])
    fold = get_fold("pascal", 0)
    torch.manual_seed(seed)
    model, _ = build_model(cfg, fold, load_weights=False)
    svf.merge(model)
    return model.eval(), cfg, fold


def balance(model, episode):
    """Shift the classifier's bias so that about half of the query is predicted foreground
    (the meta branch's, which BAM's fresh ensemble passes through)."""
    with torch.no_grad():
        out = model(episode)
        logits = out.get("logits_meta", out["logits"])
        classifier_bias(model)[1] -= (logits[:, 1] - logits[:, 0]).median()


def bench_shot(args, device, shot):
    model, cfg, fold = bench_model(args.arch, shot, args.size, args.mode, overrides=args.set)
    model.to(device)
    episodes = [{k: v.to(device) for k, v in synthetic_episode(fold, shot, args.size, i).items()}
                for i in range(args.episodes)]
    balance(model, episodes[0])
    runtime = Runtime(cfg.replace(device=device.type))
    adapt = EpisodeAdaptation(model, cfg)
    counters = {"backbone": PassCounter(model.backbone)}
    base = getattr(model, "base_learner", None)
    if base is not None and base.backbone is not model.backbone:
        counters["base learner backbone"] = PassCounter(base.backbone)

    def plain():
        with torch.no_grad():
            for e in episodes:
                model(e)

    def eft():
        with torch.no_grad():
            for e in episodes:
                adapt(model, e, runtime)

    counts = {}
    for name, fn in (("plain", plain), ("eft", eft)):
        for c in counters.values():
            c.reset()
        fn()
        counts[name] = {k: dict(c.images, passes=c.passes) for k, c in counters.items()}
    rounds = adapt.counts.take()["chosen"]
    times = time_interleaved({"plain": plain, "eft": eft}, device, args.warmup, args.repeats)
    for c in counters.values():
        c.remove()
    n = len(episodes)
    passes = counts["eft"]["backbone"]["passes"] / n
    print(f"{args.arch} resnet50 {args.mode} {shot}-shot {args.size}px {device.type}: plain "
          f"{statistics.median(times['plain']) / n:.3f} s/episode, eft "
          f"{statistics.median(times['eft']) / n:.3f} s/episode ({cfg.eft_rounds} rounds, eft_s2q_output "
          f"{cfg.eft_s2q_output}; rounds chosen {rounds})")
    print("  eft / plain per timed round: " + " ".join(f"{e / p:.2f}" for e, p in zip(times["eft"], times["plain"])))
    for name in ("plain", "eft"):
        for part, c in counts[name].items():
            print(f"  {name:5s} {part}: {c['passes'] / n:g} passes/episode (layer0-3), layer4 "
                  f"{c.get('layer4', 0) / n:g} images/episode")
    print(f"  published procedure (counted from its code): {PUBLISHED_PASSES.get(shot, '?')} backbone "
          f"passes/episode; here {passes:g}")
    return median_ratio(times, "eft", "plain"), passes


def run(args, device):
    results = {shot: bench_shot(args, device, shot) for shot in args.shots}
    print(" ".join(f"eft_vs_plain_{s}shot={r:.2f}" for s, (r, _) in results.items()) + " " +
          " ".join(f"backbone_passes_{s}shot={p:g}" for s, (_, p) in results.items()))


def main(argv=None):
    parser = command_parser("tools.bench_eft", __doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--arch", default="msanet", choices=("baseline", "pfenet", "bam", "msanet"))
    parser.add_argument("--mode", default="svf", choices=("svf", "freeze"),
                        help="freeze: BAM's and MSANet's base learner shares the backbone")
    parser.add_argument("--size", type=int, default=None, help="default 473 cuda, 129 cpu")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--episodes", type=int, default=2, help="synthetic episodes per timed call")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds; default 5 cuda, 3 cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. eft_s2q_output=final (the published S2Q output)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    args.size = args.size or (473 if args.device == "cuda" else 129)
    args.repeats = args.repeats or (5 if args.device == "cuda" else 3)
    run_with_threads(run, args)


if __name__ == "__main__":
    run_main(main)
