"""Convert a published PFENet / BAM / BAM-PSPNet / MSANet checkpoint into this project's format.

    python -m tools.convert --arch pfenet --backbone resnet50 PFENet_split0.pth out.pth
    python -m tools.convert --arch bam --backbone resnet50 BAM_split0_1shot.pth out.pth
    python -m tools.convert --arch pspnet --backbone resnet50 initmodel/PSPNet/.../best.pth out.pth
    python -m tools.convert --arch msanet --backbone vgg16 vgg_5_0_0.6886.pth out.pth

The keys are renamed through model/keymap.py (docs/models.md lists the mapping); the result is
then loaded strictly into a model of that architecture, built with the sizes the file implies
(reduce_dim, scales, classes, shots), so a file that converts also loads. Written atomically as
{"model": state_dict, "arch": ..., "backbone": ..., "converted_from": IN}. A BAM or MSANet file
becomes a dense model: load it with mode freeze (their own setting) or full. A published
MSANet 5-shot file computes what it was trained to compute with msanet_sorted_shot_weights=true
(and, for VGG, msanet_last_shot_fine_maps=true); the command says so.
"""
import os

from model.backbone import BACKBONES, build_backbone
from model.bam import BAM
from model.keymap import ARCHS
from model.msanet import MSANet
from model.pfenet import PFENet
from model.pspnet import PSPNet
from model.weights import UPSTREAM, read_weights
from util.cli import command_parser, run_main
from util.fileio import atomic_torch_save
from util.state_dict import load_strict


def _count(state, template):
    """How many consecutive indices i have a key starting with template.format(i)."""
    i = 0
    while any(k.startswith(template.format(i)) for k in state):
        i += 1
    return i


def model_for(arch, backbone_name, state):
    """A model of `arch` sized after `state` (our key names), random weights."""
    # Bin sizes and scale sizes hold no weights: only their number matters here.
    backbone = build_backbone(backbone_name)
    if arch == "pspnet":
        return PSPNet(backbone, num_classes=state["cls.4.weight"].shape[0],
                      bins=range(1, _count(state, "ppm.branches.{}.") + 1))
    reduce_dim = state["down_query.0.weight"].shape[0]
    if arch == "pfenet":
        scales = [2.0 ** -i for i in range(_count(state, "fem.{}.merge."))]
        return PFENet(backbone, reduce_dim=reduce_dim, scales=scales)
    # bam, msanet: the base learner's classes, the shots and the re-weighting's width
    base_classes = state["base_learner.cls.4.weight"].shape[0] - 1
    base = PSPNet(backbone, num_classes=base_classes + 1,
                  bins=range(1, _count(state, "base_learner.ppm.branches.{}.") + 1))
    if "shot_reweight.weight" in state:
        shot, trans_dim = state["shot_reweight.weight"].shape[0], 0
    elif "shot_reweight.0.weight" in state:
        trans_dim, shot = state["shot_reweight.0.weight"].shape[:2]
    else:
        shot, trans_dim = 1, 0
    meta_learner = MSANet if arch == "msanet" else BAM
    return meta_learner(base, range(1, base_classes + 1), shot=shot, reduce_dim=reduce_dim,
                        kshot_trans_dim=trans_dim)


def convert(arch, backbone_name, src, dst):
    """Convert `src` to our format at `dst`; returns the number of keys written."""
    state, fmt = read_weights(src, arch, build_backbone(backbone_name))
    if fmt != UPSTREAM:
        raise ValueError(f"{src}: already in this project's format (keys start with 'backbone.')")
    try:
        model = model_for(arch, backbone_name, state)
    except KeyError as e:
        raise ValueError(f"{src}: has no {e.args[0]!r}, needed to size the {arch} model") from None
    # strict: every key of the model present with the right shape, nothing left over
    load_strict(model, state, src, f"a {arch} model")
    atomic_torch_save({"model": state, "arch": arch, "backbone": backbone_name,
                       "converted_from": os.fspath(src)}, dst)
    return len(state), getattr(model, "shot", 1)


def main(argv=None):
    parser = command_parser("tools.convert", __doc__)
    parser.add_argument("--arch", required=True, choices=ARCHS)
    parser.add_argument("--backbone", default="resnet50", choices=tuple(BACKBONES))
    parser.add_argument("src", help="published checkpoint ({'state_dict': ...}, upstream key names)")
    parser.add_argument("dst", help="output file in this project's format")
    args = parser.parse_args(argv)
    count, shot = convert(args.arch, args.backbone, args.src, args.dst)
    print(f"{args.src} -> {args.dst}: {count} keys, {args.arch} / {args.backbone}, loads strictly")
    if args.arch == "msanet" and shot > 1:
        keys = "msanet_sorted_shot_weights=true"
        if args.backbone == "vgg16":
            keys += " msanet_last_shot_fine_maps=true"
        print(f"a published {shot}-shot MSANet computes what it was trained to compute with {keys} (docs/models.md)")
    return 0


if __name__ == "__main__":
    run_main(main)
