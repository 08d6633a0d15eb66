"""One configuration's fold table as the paper prints it: Fold-0 .. Fold-3 and their Mean,
mIoU in percent, mean +- std over the test seeds, with the paper's row beside it when a row of
docs/paper_tables.yaml has the same settings.

    python -m tools.fold_table --config config/pascal_split0.yaml [key=value ...] [--csv PATH]
    python -m tools.fold_table --config config/pascal_split0.yaml mode=partial ft_kernels=3x3

Each fold's run is found through the config alone: the config with split=k names the
experiment directory (exp_path) and the records test.py writes there (result/test_best-<time>.json,
or test_<stem>-<time>.json for weight=PATH; the newest one made with the config's settings
counts). A fold whose record is missing, unreadable, incomplete, NaN or made with other
settings is named with the reason; the Mean needs all four folds. The
std of the Mean is taken over the seeds of the per-seed four-fold mean (same seeds in every
fold). The table is printed as Markdown; --csv also writes it as CSV.
"""
import csv
import io

import numpy as np

from engine.choices import load_config
from engine.command import add_config_arguments
from util.cli import command_parser, run_main
from util.data.folds import NUM_FOLDS
from util.fileio import atomic_write_text

from tools.paper_records import find_record
from tools.paper_runs import matching_rows, run_keys
from tools.paper_tables import load_tables


def fold_records(cfg, keys):
    """A FoldRecord per fold; a record must agree with its fold's config on `keys`."""
    records = []
    for split in range(NUM_FOLDS):
        fold_cfg = cfg.replace(split=split)
        expected = {key: getattr(fold_cfg, key) for key in keys + ("split",)}
        records.append(find_record(fold_cfg, expected))
    return records


def our_rows(records):
    """[(name, [(mean, std) or None per fold], (mean, std) or None)] per prediction output, in
    percent. The Mean is there only when every fold is."""
    usable = [r for r in records if r.ok]
    outputs = list(dict.fromkeys(name for r in usable for name in r.miou))
    rows = []
    for name in outputs:
        per_fold = [None] * NUM_FOLDS
        for r in usable:
            if name in r.miou:
                values = 100 * np.array(r.miou[name])
                per_fold[r.split] = (float(values.mean()), float(values.std()))
        mean = None
        if all(cell is not None for cell in per_fold):
            seeds_agree = all(r.seeds == usable[0].seeds for r in usable)
            per_seed = 100 * np.mean([r.miou[name] for r in usable], axis=0)
            mean = (float(np.mean([c[0] for c in per_fold])),
                    float(per_seed.std()) if seeds_agree else None)
        rows.append((f"ours ({name})", per_fold, mean))
    return rows


def paper_row(row, shot):
    values = row.paper[shot]
    return (f"paper: {row.label} {row.name}", [(v, None) for v in values[:4]], (values[4], None))


def _cell(cell):
    if cell is None:
        return "–"
    mean, std = cell
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def markdown(rows):
    lines = ["| run | Fold-0 | Fold-1 | Fold-2 | Fold-3 | Mean |", "|" + " --- |" * 6]
    for name, folds, mean in rows:
        lines.append("| " + " | ".join([name] + [_cell(c) for c in folds] + [_cell(mean)]) + " |")
    return "\n".join(lines)


def csv_text(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [f"fold{k}" for k in range(NUM_FOLDS)] + ["mean"]
    writer.writerow(["run"] + [c + suffix for c in columns for suffix in ("", "_std")])
    for name, folds, mean in rows:
        cells = []
        for cell in folds + [mean]:
            mean_value, std = cell if cell is not None else (None, None)
            cells += ["" if mean_value is None else f"{mean_value:.4f}",
                      "" if std is None else f"{std:.4f}"]
        writer.writerow([name] + cells)
    return out.getvalue()


def main(argv=None):
    parser = command_parser("tools.fold_table", __doc__)
    add_config_arguments(parser)
    parser.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    tables, strategies = load_tables()
    records = fold_records(cfg, run_keys(tables, strategies))
    rows = our_rows(records)
    matches = sorted(matching_rows(cfg, tables, strategies),
                     key=lambda match: not match[0].table.startswith("main"))
    if matches:
        rows.append(paper_row(*matches[0]))
    seeds = next((len(r.seeds) for r in records if r.ok), 0)
    spread = f", mean ± std over {seeds} test seeds" if seeds else ""
    given = f" ({' '.join(args.overrides)})" if args.overrides else ""
    print(f"{cfg.dataset}, {cfg.arch}, {cfg.backbone}, mode {cfg.mode}, {cfg.shot}-shot{given}: "
          f"mIoU (%){spread}\n")
    print(markdown(rows) if rows else "no fold has a usable record")
    if len(matches) > 1:
        print("\nthe same run in the paper: " + ", ".join(row.label for row, _ in matches[1:]))
    if not matches:
        print("\nno row of the paper has these settings (docs/paper.md)")
    problems = [r.problem for r in records if not r.ok]
    if problems:
        print("\nmissing:\n" + "\n".join(f"  {p}" for p in problems))
    if args.csv:
        atomic_write_text(args.csv, csv_text(rows))
        print(f"\nCSV written to {args.csv}")
    return 0


if __name__ == "__main__":
    run_main(main)
