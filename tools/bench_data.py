"""Data pipeline benchmark on synthetic data: index build times and episodes per second.

    python -m tools.bench_data [--train 400] [--val 100] [--big-lines 82081] [--episodes 40]

1. Writes a synthetic VOC dataset of VOC-sized images (300-500 px) in a temporary directory.
2. Index, on a Pascal-sized list (--index-lines train lines, a quarter as many val lines, cycling
   over the synthetic labels through symlinks): our cold build (labels read in parallel, every
   fold derived from one pass), the same with one process, the references' way (one process,
   np.unique then one mask per class, once per fold and list, redone at every start) for one
   fold, and our warm start (cache). Best of 2 each.
3. Warm start on a COCO-sized list: --big-lines lines (symlinks to small files), built cold
   once, then timed warm.
4. Episodes per second in one process (one DataLoader worker; OpenCV and torch on one thread):
   train and val, 1-shot and 5-shot, at 473 (Pascal parameters) and 641 (COCO parameters).
Timings are wall-clock on this machine; compare the ratios, not the absolute numbers.
"""
import os
import shutil
import tempfile
import time

import cv2
import numpy as np
import torch

from tools.synthetic import write_voc
from util.cli import command_parser, run_main
from util.data.episodes import EpisodeDataset
from util.data.folds import NUM_FOLDS, get_fold
from util.data.index import MIN_PIXELS, build_fold_index
from util.data.label_stats import compute_label_stats
from util.data.lists import read_pairs


def reference_style_index(data_root, list_file, classes):
    """One fold's index the way PFENet's make_dataset builds it (one process, every start)."""
    kept, per_class = [], {c: [] for c in classes}
    for image_rel, label_rel in read_pairs(list_file):
        label = cv2.imread(os.path.join(data_root, label_rel), cv2.IMREAD_GRAYSCALE)
        counting = [c for c in np.unique(label).tolist()
                    if c in classes and np.sum(label == c) >= MIN_PIXELS]
        if counting:
            kept.append((image_rel, label_rel))
            for c in counting:
                per_class[c].append(len(kept) - 1)
    return kept, per_class


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _best_of(repeats, fn):
    return min(_timed(fn)[0] for _ in range(repeats))


def linked_list(root, list_file, lines, out_dir):
    """A list of `lines` lines cycling over `list_file`'s entries through symlinks in out_dir
    (same label files, distinct paths), so the index bench reads a VOC-sized list."""
    pairs = read_pairs(list_file)
    os.makedirs(out_dir)
    rows = []
    for n in range(lines):
        image_rel, label_rel = pairs[n % len(pairs)]
        for rel, ext in ((image_rel, ".jpg"), (label_rel, ".png")):
            os.symlink(os.path.join(root, rel), os.path.join(out_dir, f"{n:06d}{ext}"))
        rows.append(f"{os.path.basename(out_dir)}/{n:06d}.jpg {os.path.basename(out_dir)}/{n:06d}.png")
    path = out_dir + ".txt"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


def bench_index(root, train_list, val_list, cache, repeats=2):
    """Print cold / single-process / references' way / warm index timings (best of `repeats`)."""
    def ours(workers, cache_dir, rebuild):
        stats = [compute_label_stats(lst, root, cache_dir=cache_dir, workers=workers,
                                     rebuild=rebuild, progress=False) for lst in (train_list, val_list)]
        for split in range(NUM_FOLDS):
            build_fold_index(stats[0], get_fold("pascal", split), "train")
            build_fold_index(stats[1], get_fold("pascal", split), "val")
    fold = get_fold("pascal", 0)

    def references():
        reference_style_index(root, train_list, fold.base)
        reference_style_index(root, val_list, fold.novel)
    ours(1, None, True)  # untimed pass: file cache and imports warm for everyone
    cold = _best_of(repeats, lambda: ours(None, cache, True))
    single = _best_of(repeats, lambda: ours(1, None, True))
    ref = _best_of(repeats, references)
    warm = _best_of(repeats, lambda: ours(None, cache, False))
    print(f"index, {os.cpu_count()} CPUs, best of {repeats}: cold build (all 4 folds, train+val lists, "
          f"parallel) {cold:.2f} s; same in one process {single:.2f} s; warm start (all 4 folds) "
          f"{warm * 1000:.0f} ms")
    print(f"index, references' way (one process, one fold, train+val lists, redone every start): {ref:.2f} s")
    print(f"ratio our cold build / references' single-process build: {cold / ref:.2f} "
          f"(ours builds all 4 folds, theirs 1); warm start / references: {warm / ref:.4f}")


def bench_big_list(tmp, lines, cache):
    """Cold build once, then time the warm start of a `lines`-line list."""
    big = os.path.join(tmp, "big")
    os.makedirs(os.path.join(big, "img"))
    os.makedirs(os.path.join(big, "lbl"))
    rng = np.random.default_rng(0)
    sources = []
    for k in range(16):
        label = np.zeros((48, 64), np.uint8)
        label[: 8 + 2 * k, : 40] = 1 + k
        img, lbl = os.path.join(big, f"src{k}.jpg"), os.path.join(big, f"src{k}.png")
        cv2.imwrite(img, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(lbl, label)
        sources.append((img, lbl))
    rows = []
    for n in range(lines):
        img, lbl = sources[n % len(sources)]
        os.symlink(img, os.path.join(big, "img", f"{n:06d}.jpg"))
        os.symlink(lbl, os.path.join(big, "lbl", f"{n:06d}.png"))
        rows.append(f"img/{n:06d}.jpg lbl/{n:06d}.png")
    list_file = os.path.join(big, "train.txt")
    with open(list_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    cold, _ = _timed(lambda: compute_label_stats(list_file, big, cache_dir=cache, progress=False))
    def warm_start():
        stats = compute_label_stats(list_file, big, cache_dir=cache, progress=False)
        return build_fold_index(stats, get_fold("coco", 0), "train", min_pixels=1)
    warm, index = _timed(warm_start)
    print(f"{lines}-line list: cold build {cold:.2f} s, warm start (cache + one fold index, "
          f"{len(index.images)} images) {warm:.3f} s")


def bench_episodes(root, train_list, val_list, cache, episodes):
    """Print episodes per second for train / val, 1 / 5 shots, 473 / 641."""
    cv2.setNumThreads(1)  # what one DataLoader worker gets (torch sets 1 thread in workers)
    torch.set_num_threads(1)
    for size, scale in ((473, (0.9, 1.1)), (641, (0.8, 1.25))):
        for mode, list_file in (("train", train_list), ("val", val_list)):
            for shot in (1, 5):
                ds = EpisodeDataset(root, list_file, get_fold("pascal", 0), shot, mode, train_size=size,
                                    val_size=size, scale_range=scale, seed=321, test_num=episodes,
                                    index_cache_dir=cache)
                count = min(episodes, len(ds))
                ds[0]  # warm up file caches
                seconds, _ = _timed(lambda: [ds[i] for i in range(count)])
                print(f"episodes {mode:5s} {shot}-shot {size}: {count / seconds:6.1f} episodes/s")


def main(argv=None):
    """Run the benchmark (see the module docstring)."""
    parser = command_parser("tools.bench_data", __doc__)
    parser.add_argument("--train", type=int, default=400, help="synthetic train images")
    parser.add_argument("--val", type=int, default=100, help="synthetic val images")
    parser.add_argument("--index-lines", type=int, default=3000, help="train list lines of the index bench")
    parser.add_argument("--big-lines", type=int, default=82081, help="lines of the warm-start list (0: skip)")
    parser.add_argument("--episodes", type=int, default=40, help="episodes timed per setting")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench_data-")
    try:
        root, cache = os.path.join(tmp, "voc"), os.path.join(tmp, "cache")
        seconds, (train_list, val_list) = _timed(lambda: write_voc(
            root, args.train, args.val, min_size=300, max_size=500, seed=0, workers=None))
        print(f"synthetic VOC: {args.train} train + {args.val} val images (300-500 px) in {seconds:.1f} s")
        index_train = linked_list(root, train_list, args.index_lines, os.path.join(tmp, "index_train"))
        index_val = linked_list(root, val_list, args.index_lines // 4, os.path.join(tmp, "index_val"))
        print(f"index lists: {args.index_lines} train + {args.index_lines // 4} val lines over those labels")
        bench_index(tmp, index_train, index_val, cache)
        if args.big_lines:
            bench_big_list(tmp, args.big_lines, cache)
        bench_episodes(root, train_list, val_list, cache, args.episodes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
