"""python -m tools.bench_svf: speed and memory of SVF training, and of merged inference, on the
resnet50 backbone.

In one run, interleaving the configurations so that machine noise hits them alike, it times
one forward + backward (loss = mean of layer2 + layer3 + layer4, BatchNorm in eval mode) of

  (a) frozen      the frozen backbone (forward under no_grad: what a frozen backbone costs)
  (b) full        full fine-tuning of layer2-4
  (c) reference   SVF written the way the authors do it (tools/svf_reference.py)
  (d) ours        svf.finetune(backbone, "svf")
  (e) ours, keep=activation   the same, its SVD convs set to keep the rank-r activation
                  (fewer operations, more memory: docs/svf.md)

and the inference (no_grad forward) of the dense backbone vs ours after svf.merge. Memory of
a training step: on CUDA its peak allocated; on the CPU the bytes autograd saves for the
backward (activations, parameters excluded). It prints a table of medians with time and
memory relative to (b) and (c), and last one line of ratios:
  train_vs_reference=... train_vs_full=... memory_vs_reference=... memory_vs_full=...
  merged_infer_vs_dense=...
(our SVF training step's time and memory against the authors' and against full fine-tuning,
and our merged model's inference time against the dense backbone's).
"""
import contextlib
import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.backbone import build_backbone
from svf import SVDConv2d, finetune, merge
from tools.svf_reference import reference_svf
from tools.timing import (cuda_peak_bytes, median_ms, median_ratio, run_with_threads,
                          saved_tensor_bytes, time_interleaved)
from util.cli import command_parser, run_main

FROZEN, FULL, REFERENCE, OURS, OURS_ACTIVATION = (
    "(a) frozen", "(b) full layer2-4", "(c) reference SVF", "(d) ours SVF",
    "(e) ours keep=activ.")
DENSE, MERGED = ("dense inference", "ours merged")
AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _loss(feats):
    return sum(feats[k].float().mean() for k in ("layer2", "layer3", "layer4"))


def trains(backbone):
    return any(p.requires_grad for p in backbone.parameters())


def autocast(device, amp):
    if AMP[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP[amp])


def train_step(backbone, x, amp="off"):
    with autocast(x.device, amp):
        if not trains(backbone):
            with torch.no_grad():
                return _loss(backbone(x))
        loss = _loss(backbone(x))
    loss.backward()
    for p in backbone.parameters():
        p.grad = None
    return loss


def infer_step(backbone, x, amp="off"):
    with torch.no_grad(), autocast(x.device, amp):
        return backbone(x)


def training_memory(backbone, x, amp="off"):
    """Bytes a training step needs beyond the model: CUDA peak allocated; CPU saved tensors."""
    if x.device.type == "cuda":
        return cuda_peak_bytes(lambda: train_step(backbone, x, amp), x.device)
    if not trains(backbone):
        return 0
    with autocast(x.device, amp):
        return saved_tensor_bytes(lambda: _loss(backbone(x)), backbone.parameters())


def gflops(step, backbone, x):
    """Floating-point operations of one step as counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        step(backbone, x)
    return counter.get_total_flops() / 1e9


def build_variants(device, seed):
    """dense, full, reference, ours, ours keeping activations, merged: from one random
    backbone."""
    torch.manual_seed(seed)
    dense = build_backbone("resnet50").to(device).eval()
    dense.requires_grad_(False)
    full = copy.deepcopy(dense)
    finetune(full, "partial")
    reference = reference_svf(copy.deepcopy(dense))
    ours = copy.deepcopy(dense)
    finetune(ours, "svf")
    ours_activation = copy.deepcopy(ours)
    for m in ours_activation.modules():
        if isinstance(m, SVDConv2d):
            m.keep = "activation"
    merged = merge(copy.deepcopy(ours))
    return dense, full, reference, ours, ours_activation, merged


def path_counts(backbone, x):
    """How many SVD convs took each computation (and kept what) in one training forward."""
    counts, hooks = {}, []
    for m in backbone.modules():
        if isinstance(m, SVDConv2d):
            def hook(module, inputs):
                path, keep_input = module.plan(inputs[0])
                label = f"{path} keeping {'x' if keep_input or path == 'rebuild' else 'a'}"
                counts[label] = counts.get(label, 0) + 1
            hooks.append(m.register_forward_pre_hook(hook))
    train_step(backbone, x)
    for h in hooks:
        h.remove()
    return counts


def main(argv=None):
    parser = command_parser("tools.bench_svf", __doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=None, help="default 2")
    parser.add_argument("--size", type=int, default=None,
                        help="image side; default 233 on cpu, 473 on cuda")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 cpu, 30 cuda")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", default="off", choices=tuple(AMP),
                        help="autocast dtype of the forward (fp16: cuda only)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.amp == "fp16" and args.device != "cuda":
        parser.error("--amp fp16 needs --device cuda")
    run_with_threads(run, args)


def run(args, device):
    """Build the set-ups, time them and print the table and the final line."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as training runs
    batch = args.batch or 2
    size = args.size or (473 if cuda else 233)
    repeats = args.repeats or (30 if cuda else 7)

    dense, full, reference, ours, ours_activation, merged = build_variants(device, args.seed)
    x = torch.randn(batch, 3, size, size, device=device)
    print(f"bench_svf: resnet50, input {batch}x3x{size}x{size}, device {device}"
          f" ({torch.get_num_threads()} CPU threads), amp {args.amp}, {repeats} interleaved"
          f" repeats, median")
    print(f"ours, SVD conv computations in one training step: {path_counts(ours, x)}")

    train = {FROZEN: dense, FULL: full, REFERENCE: reference, OURS: ours,
             OURS_ACTIVATION: ours_activation}
    infer = {DENSE: dense, MERGED: merged}
    jobs = {name: (lambda b=b: train_step(b, x, args.amp)) for name, b in train.items()}
    times = time_interleaved(jobs, device, args.warmup, repeats)
    jobs = {name: (lambda b=b: infer_step(b, x, args.amp)) for name, b in infer.items()}
    times.update(time_interleaved(jobs, device, args.warmup, repeats))
    memory = {name: training_memory(b, x, args.amp) for name, b in train.items()}
    label = "peak MB" if cuda else "saved MB"
    print(f"{'configuration':<20} {'median ms':>10} {'vs full':>8} {'vs ref':>7} {'GFLOP':>7} "
          f"{label:>9} {'vs full':>8} {'vs ref':>7}")
    for name, backbone in {**train, **infer}.items():
        step = train_step if name in train else infer_step
        row = f"{name:<20} {median_ms(times, name):10.1f} "
        row += (f"{median_ratio(times, name, FULL):8.3f} {median_ratio(times, name, REFERENCE):7.3f}"
                if name in train else " " * 16)
        row += f" {gflops(step, backbone, x):7.1f}"
        if name in train:
            mb = memory[name] / 2**20
            row += (f" {mb:9.1f} {memory[name] / memory[FULL]:8.3f}"
                    f" {memory[name] / memory[REFERENCE]:7.3f}")
        print(row)
    print(f"train_vs_reference={median_ratio(times, OURS, REFERENCE):.3f} "
          f"train_vs_full={median_ratio(times, OURS, FULL):.3f} "
          f"memory_vs_reference={memory[OURS] / memory[REFERENCE]:.3f} "
          f"memory_vs_full={memory[OURS] / memory[FULL]:.3f} "
          f"merged_infer_vs_dense={median_ratio(times, MERGED, DENSE):.3f}")


if __name__ == "__main__":
    run_main(main)
