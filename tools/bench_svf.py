"""python -m tools.bench_svf: speed of SVF training and of merged inference on the resnet50 backbone.

In one run, interleaving the configurations so that machine noise hits them alike, it times
one forward + backward (loss = mean of layer2 + layer3 + layer4, BatchNorm in eval mode) of

  (a) frozen      the frozen backbone (forward under no_grad: what a frozen backbone costs)
  (b) full        full fine-tuning of layer2-4
  (c) reference   SVF written the way the authors do it (tools/svf_reference.py)
  (d) ours        svf.finetune(backbone, "svf")

and the inference (no_grad forward) of the dense backbone vs ours after svf.merge. It prints
a table of medians and, last, one line of three ratios of median times:
  train_vs_reference=... train_vs_full=... merged_infer_vs_dense=...
(our SVF training step against the authors' and against full fine-tuning, and our merged
model's inference against the dense backbone's). Memory: peak allocated on CUDA; on CPU the
bytes that autograd saves for the backward pass (activations, parameters excluded).
"""
import copy
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.backbone import build_backbone
from svf import SVDConv2d, finetune, merge
from tools.svf_reference import reference_svf
from util.cli import command_parser, run_main


FROZEN, FULL, REFERENCE, OURS = ("(a) frozen", "(b) full layer2-4", "(c) reference SVF",
                                 "(d) ours SVF")
DENSE, MERGED = ("dense inference", "ours merged")


def _loss(feats):
    return sum(feats[k].float().mean() for k in ("layer2", "layer3", "layer4"))


def train_step(backbone, x):
    if not any(p.requires_grad for p in backbone.parameters()):
        with torch.no_grad():
            return _loss(backbone(x))
    loss = _loss(backbone(x))
    loss.backward()
    for p in backbone.parameters():
        p.grad = None
    return loss


def infer_step(backbone, x):
    with torch.no_grad():
        return backbone(x)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(backbone, x):
    """Bytes of the distinct tensors autograd saves for backward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in backbone.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss(backbone(x))
    del loss
    return sum(seen.values())


def peak_bytes(step, backbone, x, device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(backbone, x)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    if step is infer_step or not any(p.requires_grad for p in backbone.parameters()):
        return 0
    return saved_activation_bytes(backbone, x)


def time_interleaved(jobs, x, device, warmup, repeats):
    """jobs: {name: (step, backbone)} -> {name: [seconds per round]}; every round runs each
    job once, so a slow stretch of the machine hits all jobs of that round alike."""
    for _ in range(warmup):
        for step, backbone in jobs.values():
            step(backbone, x)
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, (step, backbone) in jobs.items():
            _sync(device)
            start = time.perf_counter()
            step(backbone, x)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times, numerator, denominator):
    """Median over rounds of the per-round time ratio (robust to drifting machine load)."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def gflops(step, backbone, x):
    """Floating-point operations of one step as counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        step(backbone, x)
    return counter.get_total_flops() / 1e9


def build_variants(device, seed):
    """The four training set-ups and the two inference set-ups, from one random backbone."""
    torch.manual_seed(seed)
    dense = build_backbone("resnet50").to(device).eval()
    dense.requires_grad_(False)
    full = copy.deepcopy(dense)
    finetune(full, "partial")
    reference = reference_svf(copy.deepcopy(dense))
    ours = copy.deepcopy(dense)
    finetune(ours, "svf")
    merged = merge(copy.deepcopy(ours))
    return dense, full, reference, ours, merged


def path_counts(backbone, x):
    """How many SVD layers took each computation in one training forward."""
    counts, hooks = {}, []
    for m in backbone.modules():
        if isinstance(m, SVDConv2d):
            def hook(module, inputs, _):
                path = module._choose_path(
                    inputs[0].numel() // (inputs[0].shape[1] * module.stride[0]
                                          * module.stride[1]), inputs[0].requires_grad)
                counts[path] = counts.get(path, 0) + 1
            hooks.append(m.register_forward_hook(hook))
    _loss(backbone(x)).backward()
    for h in hooks:
        h.remove()
    for p in backbone.parameters():
        p.grad = None
    return counts


def main(argv=None):
    parser = command_parser("tools.bench_svf", __doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=None, help="default 2")
    parser.add_argument("--size", type=int, default=None,
                        help="image side; default 233 on cpu, 473 on cuda")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 cpu, 30 cuda")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    run_with_threads(run, args)


def run_with_threads(run_fn, args):
    """run_fn(args, device) with torch's CPU threads set to --threads (restored afterwards)."""
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        run_fn(args, torch.device(args.device))
    finally:
        torch.set_num_threads(previous_threads)


def run(args, device):
    """Build the set-ups, time them and print the table and the final line."""
    cuda = device.type == "cuda"
    batch = args.batch or 2
    size = args.size or (473 if cuda else 233)
    repeats = args.repeats or (30 if cuda else 7)

    dense, full, reference, ours, merged = build_variants(device, args.seed)
    x = torch.randn(batch, 3, size, size, device=device)
    print(f"bench_svf: resnet50, input {batch}x3x{size}x{size}, device {device}"
          f" ({torch.get_num_threads()} CPU threads), {repeats} interleaved repeats, median")
    print(f"ours, SVD layer computations in one training step: {path_counts(ours, x)}")

    train_jobs = {FROZEN: (train_step, dense), FULL: (train_step, full),
                  REFERENCE: (train_step, reference), OURS: (train_step, ours)}
    infer_jobs = {DENSE: (infer_step, dense), MERGED: (infer_step, merged)}
    times = time_interleaved(train_jobs, x, device, args.warmup, repeats)
    times.update(time_interleaved(infer_jobs, x, device, args.warmup, repeats))
    memory_label = "peak MB" if cuda else "saved MB"
    print(f"{'configuration':<20} {'median ms':>10} {'vs full':>8} {'GFLOP':>8} {memory_label:>9}")
    for name, (step, backbone) in {**train_jobs, **infer_jobs}.items():
        versus = f"{ratio(times, name, FULL):8.3f}" if name in train_jobs else " " * 8
        mem = peak_bytes(step, backbone, x, device) / 2**20
        print(f"{name:<20} {statistics.median(times[name]) * 1e3:10.1f} {versus} "
              f"{gflops(step, backbone, x):8.1f} {mem:9.1f}")
    print(f"train_vs_reference={ratio(times, OURS, REFERENCE):.3f} "
          f"train_vs_full={ratio(times, OURS, FULL):.3f} "
          f"merged_infer_vs_dense={ratio(times, MERGED, DENSE):.3f}")


if __name__ == "__main__":
    run_main(main)
