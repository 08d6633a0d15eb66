"""python -m tools.bench_svf_layers: per-layer check of the two-convolutions-or-rebuild rule.

For every distinct SVD conv of resnet50 layer2-4 under svf.finetune(..., "svf") (only S
trains), it times forward + backward of both computations on an input like the one the layer
sees in the backbone (same shape; needing a gradient or not; coming out of a ReLU, which keeps
it, or not), and prints them next to the path svf.cost picks. This is how ELEMENTWISE_COST in
svf/cost.py was calibrated (CPU); run it with --device cuda to check the rule on a GPU.
"""
import statistics
import time

import torch
import torch.nn.functional as F

from model.backbone import build_backbone
from svf import SVDConv2d, finetune
from svf.cost import kept_by_producer
from tools.timing import run_with_threads, sync
from util.cli import command_parser, run_main


def _record_inputs(backbone, x):
    """(name, layer, input shape, input needs grad, input kept by its producer) of every SVD
    conv, in call order."""
    seen = []
    hooks = [m.register_forward_hook(
        lambda m, inputs, _, n=n: seen.append((n, m, inputs[0].shape, inputs[0].requires_grad,
                                               kept_by_producer(inputs[0]))))
        for n, m in backbone.named_modules() if isinstance(m, SVDConv2d)]
    sum(f.mean() for f in backbone(x).values()).backward()
    for h in hooks:
        h.remove()
    return seen


def layer_input(shape, needs_grad, kept, device):
    """A random input like the layer's in the backbone; `kept`: out of a ReLU (which keeps
    its output, as in the backbone), so the layer plans as it does there."""
    x = torch.randn(shape, device=device, requires_grad=needs_grad)
    return F.relu(x) if kept else x


def _time_path(layer, path, shape, needs_grad, kept, device, repeats):
    layer.compute = path
    times = []
    for i in range(repeats + 1):
        x = layer_input(shape, needs_grad, kept, device)
        sync(device)
        start = time.perf_counter()
        y = layer(x)
        y.backward(torch.ones_like(y))
        sync(device)
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
    print(f"{'first layer of its kind':<24} {'n':>2} {'conv':<33} {'picked':<18} "
          f"{'two_conv ms':>11} {'rebuild ms':>10}  faster")
    groups, agree, by_speed = {}, 0, 0
    for name, layer, shape, needs_grad, kept in calls:
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
               layer.dilation, tuple(shape), needs_grad, kept)
        groups.setdefault(key, []).append((name, layer))
    for (cin, cout, k, stride, dil, shape, needs_grad, kept), members in groups.items():
        name, layer = members[0]
        picked, keep_input = layer.plan(layer_input(shape, needs_grad, kept, device))
        two = _time_path(layer, "two_conv", shape, needs_grad, kept, device, args.repeats)
        rebuild = _time_path(layer, "rebuild", shape, needs_grad, kept, device, args.repeats)
        faster = "two_conv" if two <= rebuild else "rebuild"
        if keep_input:  # both keep x: the rule chose by expected speed
            by_speed += len(members)
            agree += len(members) * (faster == picked)
        else:
            picked += " (memory)"
        conv = (f"{cin}->{cout} k{k[0]} s{stride[0]} d{dil[0]}"
                f"{'' if needs_grad else ' x-nograd'}{' x-kept' if kept else ''}")
        print(f"{name:<24} {len(members):>2} {conv:<33} {picked:<18} {two * 1e3:11.2f} "
              f"{rebuild * 1e3:10.2f}  {faster}")
    print(f"{len(calls) - by_speed} layers chose two_conv to keep the rank-r activation instead"
          f" of a larger input; the rule agrees with the measured faster path for {agree} of"
          f" the {by_speed} layers it chose by speed")


if __name__ == "__main__":
    run_main(main)
