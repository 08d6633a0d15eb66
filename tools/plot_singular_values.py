"""How fine-tuning moved the singular values of a backbone (the SVF paper's Figures 2-6).

    python -m tools.plot_singular_values --checkpoint exp/.../snapshot/best.pth \\
        --backbone resnet50 [--pretrained auto|PATH|random] [--stages layer2 layer3] --out DIR

The values before are those of the pretrained weight (its SVD, which is where SVF starts); the
values after are the checkpoint's: its trained S (times exp(S') under svf_param exp / exp_both),
or, for a merged dense checkpoint, u_i^T W v_i with the pretrained singular vectors (the
same i-th direction, never re-sorted). The checkpoint may be train.py's ({"model": ...}, the
backbone's keys under `backbone.`), a backbone state dict, or an svf.save_trainable file.
--pretrained: auto = the backbone's file in initmodel/; random = the random initialisation
train.py draws with pretrained='' for seed --seed (default: the checkpoint's config seed).

Per stage it writes <stage>_3x3_top<N>.png (every 3x3 conv), <stage>_1x1_top<N>.png (the last
1x1 conv of every block, as the paper plots), <stage>_last_all.png (the last 3x3 and 1x1 conv,
every singular value) and singular_values.csv (every conv of the stages: conv, kernel, index,
before, after, change).
"""
import csv
import io
import math
import os

import torch

import svf
from model.backbone import build_backbone
from util.cli import command_parser, run_main
from util.fileio import atomic_write_text
from util.seeding import seed_everything

from tools.plotting import figure, save_png

DEFAULT_SEED = 123  # config/defaults.yaml `seed`, for checkpoints without their config


def read_checkpoint(path):
    """(backbone state dict without prefix, the checkpoint's config dict or {})."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated, foreign or pickled-object file
        raise ValueError(f"{path}: not a readable weights-only checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    state = data.get("model", data.get("params", data))
    if not isinstance(state, dict):
        raise ValueError(f"{path}: its 'model' entry is not a state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state, config


def pretrained_backbone(name, pretrained, seed):
    if pretrained == "random":
        seed_everything(seed)
        return build_backbone(name)
    return build_backbone(name, pretrained=True if pretrained == "auto" else pretrained)


def convs_of(backbone, stage):
    """[(name, conv)] of the stage's nn.Conv2d layers, in order."""
    return [(f"{stage}.{n}", m) for n, m in getattr(backbone, stage).named_modules()
            if type(m) is torch.nn.Conv2d]


def values_after(name, conv, state, u, v, path):
    """The checkpoint's singular values of `conv` along the pretrained directions [groups, r]."""
    if f"{name}.S" in state:
        after = state[f"{name}.S"].double()
        if f"{name}.S_delta" in state:
            after = after * torch.exp(state[f"{name}.S_delta"].double())
        return after
    if f"{name}.weight" in state:
        blocks = state[f"{name}.weight"].double().reshape(u.shape[0], u.shape[1], -1)
        return torch.einsum("gor,goc,grc->gr", u, blocks, v)
    raise ValueError(f"{path}: no {name}.S nor {name}.weight; is it a checkpoint of this "
                     "backbone (--backbone)?")


def singular_values(backbone, state, stages, path):
    """[(conv name, kernel '3x3' | '1x1', before, after)] for every conv of the stages
    (float64 vectors, groups flattened)."""
    rows = []
    for stage in stages:
        for name, conv in convs_of(backbone, stage):
            u, s, v = svf.decompose(conv.weight.detach().double(), conv.groups)
            after = values_after(name, conv, state, u, v, path)
            if after.shape != s.shape:
                raise ValueError(f"{path}: {name} has {tuple(after.shape)} singular values, the "
                                 f"pretrained weight {tuple(s.shape)} (another rank or backbone?)")
            kernel = "1x1" if all(k == 1 for k in conv.kernel_size) else "3x3"
            rows.append((name, kernel, s.flatten(), after.flatten()))
    return rows


def csv_text(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["conv", "kernel", "index", "before", "after", "change"])
    for name, kernel, before, after in rows:
        for i, (b, a) in enumerate(zip(before.tolist(), after.tolist())):
            writer.writerow([name, kernel, i + 1, f"{b:.8g}", f"{a:.8g}", f"{a - b:.8g}"])
    return out.getvalue()


def plot_changes(rows, top, title):
    """One panel per conv: bars = change of the first `top` singular values (all when top is
    None), line = their initial values (right axis). Returns the figure."""
    columns = min(3, len(rows))
    grid = math.ceil(len(rows) / columns)
    fig, axes = figure(5 * columns, 3.2 * grid + 0.6, grid, columns)
    for ax in axes.flat[len(rows):]:
        ax.set_visible(False)
    for ax, (name, _, before, after) in zip(axes.flat, rows):
        count = len(before) if top is None else min(top, len(before))
        index = list(range(1, count + 1))
        ax.bar(index, (after - before)[:count].tolist(), color="tab:red", width=0.8)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("singular value (initial order)")
        ax.set_ylabel("change")
        initial = ax.twinx()
        initial.plot(index, before[:count].tolist(), color="tab:blue", linewidth=1)
        initial.set_ylabel("initial value", color="tab:blue")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def last_pointwise_per_block(rows, stage):
    """The last 1x1 conv of each block of the stage, outside its shortcut (ResNet's conv3)."""
    last = {}
    for row in rows:
        parts = row[0][len(stage) + 1:].split(".")
        if row[0].startswith(stage + ".") and row[1] == "1x1" and "downsample" not in parts:
            last[parts[0]] = row
    return list(last.values())


def write_figures(rows, stages, top, out):
    written = []
    for stage in stages:
        kxk = [r for r in rows if r[0].startswith(stage + ".") and r[1] == "3x3"]
        pointwise = last_pointwise_per_block(rows, stage)
        for kind, chosen in (("3x3", kxk), ("1x1", pointwise)):
            if chosen:
                fig = plot_changes(chosen, top, f"{stage}, {kind} convs: change of the initial "
                                                f"top-{top} singular values")
                written.append(save_png(fig, os.path.join(out, f"{stage}_{kind}_top{top}.png")))
        lasts = [group[-1] for group in (kxk, pointwise) if group]
        if lasts:
            fig = plot_changes(lasts, None, f"{stage}, last convs: change of every singular value")
            written.append(save_png(fig, os.path.join(out, f"{stage}_last_all.png")))
    return written


def main(argv=None):
    parser = command_parser("tools.plot_singular_values", __doc__)
    parser.add_argument("--checkpoint", required=True, help="a trained checkpoint (train.py's best.pth)")
    parser.add_argument("--backbone", required=True, help="the backbone it was trained on, e.g. resnet50")
    parser.add_argument("--pretrained", default="auto", help="auto | PATH | random (default auto)")
    parser.add_argument("--seed", type=int, help="with --pretrained random (default: the checkpoint's)")
    parser.add_argument("--stages", nargs="+", default=["layer2", "layer3"])
    parser.add_argument("--top", type=int, default=30, help="singular values per conv in the top-N figures")
    parser.add_argument("--out", required=True, help="folder for the PNG and CSV files")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    state, config = read_checkpoint(args.checkpoint)
    seed = args.seed if args.seed is not None else config.get("seed", DEFAULT_SEED)
    backbone = pretrained_backbone(args.backbone, args.pretrained, seed)
    for stage in args.stages:
        if stage not in backbone.stages:
            raise ValueError(f"--stages: {stage!r} is not a stage of {args.backbone}; "
                             f"choose from {', '.join(backbone.stages)}")
    rows = singular_values(backbone, state, args.stages, args.checkpoint)
    csv_path = os.path.join(args.out, "singular_values.csv")
    atomic_write_text(csv_path, csv_text(rows))
    for path in write_figures(rows, args.stages, args.top, args.out) + [csv_path]:
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)
