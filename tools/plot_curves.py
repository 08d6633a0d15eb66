"""Validation mIoU per epoch of several runs on one plot (the SVF supplement's Figure 1).

    python -m tools.plot_curves RUN_DIR [RUN_DIR ...] --out curves.png
    python -m tools.plot_curves --config config/pascal_split0.yaml \\
        --runs "mode=svf" "mode=partial" "mode=partial ft_kernels=3x3" --out curves.png

A run is an experiment directory (train.py's exp_path, or its result/ folder) or, with
--config, a set of key=value overrides whose config names the directory. The curve is the
scalar `--tag` (default val/logits_miou, which train.py writes every validation) from the
tensorboard event files in result/; where a resumed run logged an epoch twice, the later value
counts. The legend names each run by what sets it apart (the overrides, or the parts of the
paths that differ); --names replaces them. The best epoch of each run is printed.
"""
import os

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.choices import load_config
from util.cli import command_parser, run_main

from tools.plotting import figure, save_png

TAG = "val/logits_miou"


def events_dir(run):
    """The folder holding a run's event files: RUN/result, or RUN itself."""
    result = os.path.join(run, "result")
    return result if os.path.isdir(result) else run


def read_curve(run, tag=TAG):
    """(epochs, values) of `tag` in the run's event files, sorted by epoch."""
    folder = events_dir(run)
    if not os.path.isdir(folder) or not any(n.startswith("events.") for n in os.listdir(folder)):
        raise FileNotFoundError(f"{folder}: no tensorboard event files (train.py writes them "
                                "in the run's result/)")
    events = EventAccumulator(folder, size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        raise ValueError(f"{folder}: no scalar {tag!r}; it has "
                         f"{', '.join(sorted(events.Tags()['scalars'])) or 'none'}")
    points = {}
    for event in events.Scalars(tag):  # in the order written: a later value of an epoch wins
        points[event.step] = event.value
    epochs = sorted(points)
    return epochs, [points[e] for e in epochs]


def distinguishing_names(paths):
    """Each path reduced to the components in which the paths differ ('svf/1shot')."""
    parts = [os.path.normpath(p).split(os.sep) for p in paths]
    if len(parts) < 2:
        return [parts[0][-1] if parts else ""]
    width = max(len(p) for p in parts)
    padded = [p + [""] * (width - len(p)) for p in parts]
    differing = [i for i in range(width) if len({p[i] for p in padded}) > 1]
    return ["/".join(p[i] for i in differing if p[i]) or os.path.normpath(path)
            for p, path in zip(padded, paths)]


def plot_curves(curves, title):
    """One line per (name, epochs, values), mIoU in percent; returns the figure."""
    fig, axes = figure(8, 5)
    ax = axes[0, 0]
    for name, epochs, values in curves:
        ax.plot(epochs, [100 * v for v in values], marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = command_parser("tools.plot_curves", __doc__)
    parser.add_argument("runs", nargs="*", help="experiment directories")
    parser.add_argument("--config", help="a config file; each --runs entry overrides it")
    parser.add_argument("--runs", dest="override_sets", nargs="+", default=[], metavar="KEYS",
                        help='with --config: one quoted "key=value ..." set per run')
    parser.add_argument("--names", nargs="+", help="legend names, one per run, in order")
    parser.add_argument("--tag", default=TAG, help=f"the scalar to plot (default {TAG})")
    parser.add_argument("--title", default="validation mIoU per epoch")
    parser.add_argument("--out", required=True, help="the PNG file to write")
    args = parser.parse_args(argv)
    if args.override_sets and not args.config:
        raise ValueError("--runs needs --config (run directories go without --runs)")
    runs = list(args.runs)
    names = distinguishing_names(runs) if runs else []
    for overrides in args.override_sets:
        runs.append(load_config(args.config, overrides.split()).exp_path)
        names.append(overrides)
    if not runs:
        raise ValueError("give run directories, or --config with --runs")
    if args.names:
        if len(args.names) != len(runs):
            raise ValueError(f"--names gives {len(args.names)} names for {len(runs)} runs")
        names = args.names
    curves = [(name,) + read_curve(run, args.tag) for name, run in zip(names, runs)]
    for name, epochs, values in curves:
        best = max(range(len(values)), key=values.__getitem__)
        print(f"{name}: best {values[best]:.4f} at epoch {epochs[best]} ({len(epochs)} points)")
    print(save_png(plot_curves(curves, args.title), args.out))
    return 0


if __name__ == "__main__":
    run_main(main)
