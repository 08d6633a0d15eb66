"""python -m tools.bench_svf_layers: per-layer check of the two-convolutions-or-rebuild rule.

For every distinct SVD conv of resnet50 layer2-4 under svf.finetune(..., "svf") (only S
trains), it times forward + backward of both computations on the input the layer sees in the
backbone, and prints them next to the path svf.cost picks. This is how ELEMENTWISE_COST in
svf/cost.py was calibrated (CPU); run it with --device cuda to check the rule on a GPU.
"""
import math
import statistics
import time

import torch

from model.backbone import build_backbone
from svf import SVDConv2d, finetune
from tools.bench_svf import run_with_threads
from util.cli import command_parser, run_main


def _record_inputs(backbone, x):
    """(name, layer, input shape, input needs grad) of every SVD conv, in call order."""
    seen = []
    hooks = [m.register_forward_hook(
        lambda m, inputs, _, n=n: seen.append((n, m, inputs[0].shape, inputs[0].requires_grad)))
        for n, m in backbone.named_modules() if isinstance(m, SVDConv2d)]
    sum(f.mean() for f in backbone(x).values()).backward()
    for h in hooks:
        h.remove()
    return seen


def _time_path(layer, path, shape, needs_grad, device, repeats):
    x = torch.randn(shape, device=device, requires_grad=needs_grad)
    layer.compute = path
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        y = layer(x)
        y.backward(torch.ones_like(y))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    layer.compute = "auto"
    return statistics.median(times)


def main(argv=None):
    parser = command_parser("tools.bench_svf_layers", __doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=None, help="default 233 cpu, 473 cuda")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    run_with_threads(run, args)


def run(args, device):
    """Time both computations of every distinct SVD conv and print the comparison."""
    size = args.size or (473 if device.type == "cuda" else 233)
    torch.manual_seed(0)
    backbone = build_backbone("resnet50").to(device).eval()
    finetune(backbone, "svf")
    calls = _record_inputs(backbone, torch.randn(args.batch, 3, size, size, device=device))
    print(f"bench_svf_layers: resnet50 layer2-4, input {args.batch}x3x{size}x{size}, {device}")
    print(f"{'first layer of its kind':<24} {'n':>2} {'conv':<26} {'picked':<9} "
          f"{'two_conv ms':>11} {'rebuild ms':>10}  faster")
    groups, agree = {}, 0
    for name, layer, shape, needs_grad in calls:
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
               layer.dilation, tuple(shape), needs_grad)
        groups.setdefault(key, []).append((name, layer))
    for (cin, cout, k, stride, dil, shape, needs_grad), members in groups.items():
        name, layer = members[0]
        positions = math.prod(shape) // (shape[1] * stride[0] * stride[1])
        picked = layer._choose_path(positions, needs_grad)
        two = _time_path(layer, "two_conv", shape, needs_grad, device, args.repeats)
        rebuild = _time_path(layer, "rebuild", shape, needs_grad, device, args.repeats)
        faster = "two_conv" if two <= rebuild else "rebuild"
        agree += len(members) * (faster == picked)
        conv = f"{cin}->{cout} k{k[0]} s{stride[0]} d{dil[0]}{'' if needs_grad else ' x-nograd'}"
        print(f"{name:<24} {len(members):>2} {conv:<26} {picked:<9} {two * 1e3:11.2f} "
              f"{rebuild * 1e3:10.2f}  {faster}")
    print(f"rule agrees with the measured faster path for {agree} of {len(calls)} layers")


if __name__ == "__main__":
    run_main(main)
