"""Per-fold index: which images a fold uses and the file list of every class.

Rules (PROTOCOL.md): a class counts in an image when it covers at least `min_pixels` (2048)
pixels; the train index uses the fold's base classes, the val index its novel classes; an image
is kept when a class counts and is added to the file list of every class that counts. With
`filter_novel` (BAM, default) a training image is kept only if every class present in it
(0 and 255 aside, any pixel count) is a base class.

Command line: python -m util.index DATASET --data-root ROOT [--train-list L] [--val-list L]
    [--use-split-coco | --no-use-split-coco] [--no-filter-novel] [--workers N] [--rebuild]
"""
import argparse
import os
import textwrap
from dataclasses import dataclass

import numpy as np

from util.cli import run_main
from util.folds import NUM_CLASSES, NUM_FOLDS, check_dataset, fold_classes
from util.label_stats import DEFAULT_CACHE_DIR, PROJECT_ROOT, compute_label_stats

MIN_PIXELS = 2 * 32 * 32
DEFAULT_LISTS = {
    "pascal": ("lists/pascal/voc_sbd_merge_noduplicate.txt", "lists/pascal/val.txt"),
    "coco": ("lists/coco/train.txt", "lists/coco/val.txt"),
}


@dataclass
class FoldIndex:
    """The images of one fold and mode.

    images: (image, label) paths relative to data_root of the kept images, in list order.
    class_files: class -> int64 array of positions in `images` of the images where it counts.
    classes: the mode's class list (base for train, novel for val), ascending.
    present(position): {class: pixels} of the mode's classes present in an image (any count),
        the candidate target classes of an episode whose query is that image; stored flat in
        present_offsets / present_values / present_pixels (numpy, cheap to send to workers).
    """
    dataset: str
    split: int
    mode: str
    data_root: str
    list_file: str
    base_classes: list
    novel_classes: list
    classes: list
    min_pixels: int
    images: list
    class_files: dict
    present_offsets: np.ndarray
    present_values: np.ndarray
    present_pixels: np.ndarray

    def present(self, position):
        """{class: pixel count} of the mode's classes present in image `position`."""
        lo, hi = self.present_offsets[position], self.present_offsets[position + 1]
        return dict(zip(self.present_values[lo:hi].tolist(), self.present_pixels[lo:hi].tolist()))

    def check_supports(self, shot):
        """Raise ValueError when some query could not get `shot` distinct supports besides itself:
        a query where the target counts is in the target's file list, one where it does not is not."""
        targets = set(np.unique(self.present_values).tolist())
        for cls in self.classes:
            files = len(self.class_files[cls])
            available = files - 1 if files else 0
            if cls in targets and available < shot:
                raise ValueError(
                    f"fold {self.split} ({self.mode}) of list {self.list_file}: class {cls} has "
                    f"{available} support image(s) besides the query, {shot}-shot episodes need {shot}")


def _class_table(classes):
    table = np.zeros(256, dtype=bool)
    table[list(classes)] = True
    return table


def build_fold_index(stats, dataset, split, mode, use_split_coco=True, filter_novel=True,
                     min_pixels=MIN_PIXELS):
    """Derive the FoldIndex of (dataset, split, mode) from a list's LabelStats (vectorised).

    `filter_novel` only acts in train mode. Raises ValueError for a label value outside 0..C and
    255, and for a fold with no usable image.
    """
    if mode not in ("train", "val"):
        raise ValueError(f"mode {mode!r} is invalid; expected 'train' or 'val'")
    num_classes = NUM_CLASSES[check_dataset(dataset)]
    base, novel = fold_classes(dataset, split, use_split_coco)
    classes = base if mode == "train" else novel
    values, pixels, line = stats.values, stats.pixels, stats.line_of_entry()
    bad = np.flatnonzero(values > num_classes)
    if bad.size:
        line_no = int(line[bad[0]])
        raise ValueError(f"label {os.path.join(stats.data_root, stats.pairs[line_no][1])} (list "
                         f"{stats.list_file} line {line_no + 1}) contains value {int(values[bad[0]])}; "
                         f"expected 0..{num_classes} or 255")
    keep_line = np.ones(len(stats.pairs), dtype=bool)
    if filter_novel and mode == "train":
        keep_line[line[~_class_table(base)[values]]] = False
    mode_entry = _class_table(classes)[values] & keep_line[line]
    counting = mode_entry & (pixels >= min_pixels)
    kept = np.unique(line[counting])
    if kept.size == 0:
        raise ValueError(f"fold {split} ({mode}) of list {stats.list_file}: no image has a class of "
                         f"{classes} covering {min_pixels} pixels")
    position_of_line = np.full(len(stats.pairs), -1, dtype=np.int64)
    position_of_line[kept] = np.arange(kept.size)
    count_pos, count_val = position_of_line[line[counting]], values[counting]
    order = np.argsort(count_val, kind="stable")  # entries stay in list order within a class
    split_at = np.searchsorted(count_val[order], classes, side="left").tolist() + [order.size]
    class_files = {c: count_pos[order[split_at[i]:split_at[i + 1]]] for i, c in enumerate(classes)}
    chosen = mode_entry & (position_of_line[line] >= 0)
    offsets = np.zeros(kept.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(position_of_line[line[chosen]], minlength=kept.size))
    images = [stats.pairs[i] for i in kept.tolist()]
    return FoldIndex(dataset, split, mode, stats.data_root, stats.list_file, base, novel, classes,
                     min_pixels, images, class_files, offsets, values[chosen], pixels[chosen])


def load_fold_index(data_root, list_file, dataset, split, mode, use_split_coco=True,
                    filter_novel=True, min_pixels=MIN_PIXELS, cache_dir=DEFAULT_CACHE_DIR,
                    workers=None, rebuild=False, progress=True):
    """Label statistics (cached, see util/label_stats.py) -> the FoldIndex of one fold and mode."""
    stats = compute_label_stats(list_file, data_root, cache_dir=cache_dir, workers=workers,
                                rebuild=rebuild, progress=progress)
    return build_fold_index(stats, dataset, split, mode, use_split_coco, filter_novel, min_pixels)


def _per_class_line(prefix, index):
    counts = " ".join(f"{c}:{len(index.class_files[c])}" for c in index.classes)
    return textwrap.fill(counts, width=100, initial_indent=f"  {prefix} ",
                         subsequent_indent=" " * (len(prefix) + 3))


def main(argv=None):
    """Build every fold of a dataset and print image counts per fold and per class."""
    parser = argparse.ArgumentParser(prog="python -m util.index", description=main.__doc__)
    parser.add_argument("dataset", choices=sorted(NUM_CLASSES))
    parser.add_argument("--data-root", required=True, help="directory the list paths are relative to")
    parser.add_argument("--train-list", help="default: lists/pascal/voc_sbd_merge_noduplicate.txt or lists/coco/train.txt")
    parser.add_argument("--val-list", help="default: lists/pascal/val.txt or lists/coco/val.txt")
    parser.add_argument("--use-split-coco", action=argparse.BooleanOptionalAction, default=True,
                        help="COCO-20i interleaved folds (default) or, with --no-use-split-coco, consecutive")
    parser.add_argument("--filter-novel", action=argparse.BooleanOptionalAction, default=True,
                        help="drop training images that contain novel classes (BAM; default on)")
    parser.add_argument("--workers", type=int, default=None, help="processes reading labels (default: all CPUs)")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where label statistics are cached")
    parser.add_argument("--rebuild", action="store_true", help="ignore the cache and read every label again")
    args = parser.parse_args(argv)
    default_train, default_val = (os.path.join(PROJECT_ROOT, p) for p in DEFAULT_LISTS[args.dataset])
    stats = {}
    for mode, list_file in (("train", args.train_list or default_train), ("val", args.val_list or default_val)):
        stats[mode] = compute_label_stats(list_file, args.data_root, cache_dir=args.cache_dir,
                                          workers=args.workers, rebuild=args.rebuild)
        source = "loaded from the cache" if stats[mode].from_cache else "built"
        print(f"{mode} list {list_file}: {len(stats[mode].pairs)} lines "
              f"(label statistics {source} in {stats[mode].seconds:.2f} s)")
    coco_note = f", use_split_coco={args.use_split_coco}" if args.dataset == "coco" else ""
    print(f"{args.dataset}{coco_note}, filter_novel={args.filter_novel}, min_pixels={MIN_PIXELS}")
    for split in range(NUM_FOLDS):
        train = build_fold_index(stats["train"], args.dataset, split, "train",
                                 args.use_split_coco, args.filter_novel)
        val = build_fold_index(stats["val"], args.dataset, split, "val", args.use_split_coco)
        print(f"fold {split}: train {len(train.images)} images, val {len(val.images)} images")
        print(_per_class_line("train per class:", train))
        print(_per_class_line("val per class:", val))
    return 0


if __name__ == "__main__":
    run_main(main)
