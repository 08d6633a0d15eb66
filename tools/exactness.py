"""python -m tools.exactness: relative error of the resolved and the merged backbones against
the dense ones, per stage, in float32 (it should stay below 1e-5).

Three computations are compared with the dense backbone: `eval` (no_grad, cached dense
weights), `train` (grad enabled and only S trainable: two convolutions / rebuild, the SVF
training path) and `merged` (svf.merge back to dense layers). Without --pretrained the
backbones are randomly initialised with non-trivial BatchNorm statistics.
"""

import torch
import torch.nn as nn

from model.backbone import build_backbone
from svf import SVDConv2d, merge, resolver
from util.cli import command_parser, run_main

BACKBONES = ("resnet50", "resnet101", "resnet50_tv", "vgg16")


def relative_error(a, b):
    """||a - b|| / ||b|| in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def randomise_batchnorm(model, generator):
    """Non-trivial BatchNorm affine parameters and statistics (random init leaves them at 1 / 0),
    so that comparisons exercise realistic activations."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=generator))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))


def measure(name, size, pretrained, device):
    """{computation: {stage: relative error}} for backbone `name`."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    backbone = build_backbone(name, pretrained=True if pretrained else None).eval()
    if not pretrained:
        randomise_batchnorm(backbone, generator)
    backbone.to(device)
    x = torch.randn(1, 3, size, size, generator=generator).to(device)
    with torch.no_grad():
        dense = backbone(x)
    resolver(backbone)
    backbone.requires_grad_(False)
    for m in backbone.modules():
        if isinstance(m, SVDConv2d):
            m.S.requires_grad_(True)
    outputs = {"train": {k: v.detach() for k, v in backbone(x).items()}}
    with torch.no_grad():
        outputs["eval"] = backbone(x)
        outputs["merged"] = merge(backbone)(x)
    return {how: {stage: relative_error(out[stage], dense[stage]) for stage in dense}
            for how, out in outputs.items()}


def main(argv=None):
    parser = command_parser("tools.exactness", __doc__)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--size", type=int, default=97, help="input side (default 97)")
    parser.add_argument("--pretrained", action="store_true",
                        help="load initmodel/<file> for each backbone (initmodel/README.md)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    print(f"exactness: float32, input 1x3x{args.size}x{args.size}, full rank, "
          f"{'pretrained' if args.pretrained else 'random'} weights; max relative error "
          "over the five stages (and at layer4)")
    worst = 0.0
    for name in args.backbones:
        errors = measure(name, args.size, args.pretrained, torch.device(args.device))
        cells = [f"{how} {max(per_stage.values()):.2e} ({per_stage['layer4']:.2e})"
                 for how, per_stage in errors.items()]
        worst = max(worst, *(max(p.values()) for p in errors.values()))
        print(f"{name:<12} " + "   ".join(cells))
    print(f"worst relative error {worst:.2e} ({'below' if worst < 1e-5 else 'ABOVE'} 1e-5)")


if __name__ == "__main__":
    run_main(main)
