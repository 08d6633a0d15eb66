"""Build the per-fold index of a dataset and print its image counts per fold and per class.

    python -m tools.index --config config/base/pascal.yaml [key=value ...] [--rebuild]
    python -m tools.index --config config/base/coco.yaml data_root=/data/coco use_split_coco=false

The data keys of the config are used (data_root, train_list, val_list, use_split_coco,
filter_novel, index_cache_dir, index_workers; config/defaults.yaml documents them), for all
four folds. The label statistics are cached (util/data/label_stats.py); --rebuild reads every
label again.
"""
import textwrap

from engine.choices import load_config
from engine.command import add_config_arguments
from util.cli import command_parser, run_main
from util.data.folds import NUM_FOLDS, get_fold
from util.data.index import MIN_PIXELS, build_fold_index
from util.data.label_stats import compute_label_stats


def _per_class_line(prefix, index):
    counts = " ".join(f"{c}:{len(index.class_files[c])}" for c in index.classes)
    return textwrap.fill(counts, width=100, initial_indent=f"  {prefix} ",
                         subsequent_indent=" " * (len(prefix) + 3))


def main(argv=None):
    parser = command_parser("tools.index", __doc__)
    add_config_arguments(parser)
    parser.add_argument("--rebuild", action="store_true", help="ignore the cache and read every label again")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    stats = {}
    for mode, list_file in (("train", cfg.train_list), ("val", cfg.val_list)):
        stats[mode] = compute_label_stats(list_file, cfg.data_root, cache_dir=cfg.index_cache_dir or None,
                                          workers=cfg.index_workers or None, rebuild=args.rebuild)
        source = "loaded from the cache" if stats[mode].from_cache else "built"
        print(f"{mode} list {list_file}: {len(stats[mode].pairs)} lines "
              f"(label statistics {source} in {stats[mode].seconds:.2f} s)")
    coco_note = f", use_split_coco={cfg.use_split_coco}" if cfg.dataset == "coco" else ""
    print(f"{cfg.dataset}{coco_note}, filter_novel={cfg.filter_novel}, min_pixels={MIN_PIXELS}")
    for split in range(NUM_FOLDS):
        fold = get_fold(cfg.dataset, split, cfg.use_split_coco)
        train = build_fold_index(stats["train"], fold, "train", cfg.filter_novel)
        val = build_fold_index(stats["val"], fold, "val")
        print(f"fold {split}: train {len(train.images)} images, val {len(val.images)} images")
        print(_per_class_line("train per class:", train))
        print(_per_class_line("val per class:", val))
    return 0


if __name__ == "__main__":
    run_main(main)
