"""Write a small synthetic dataset in a real on-disk format, for the demo, tests and benchmarks.

    python -m util.synthetic --out DIR --format voc|voc-raw|coco [--train N] [--val M]
        [--min-size 160] [--max-size 256] [--seed 0] [--workers N]

voc      DIR/JPEGImages/*.jpg, DIR/SegmentationClassAug/*.png (class ids, 255 bands) and the lists
         DIR/train.txt, DIR/val.txt (`JPEGImages/X.jpg SegmentationClassAug/X.png`): ready to train.
voc-raw  the raw trees util.prepare_pascal starts from: DIR/VOCdevkit/VOC2012 (JPEGImages,
         palette SegmentationClass, ImageSets/Segmentation) and DIR/benchmark_RELEASE/dataset
         (img, cls/*.mat, train.txt, val.txt), with VOC/SBD overlaps like the real ones.
coco     DIR/{train,val}2014/*.jpg and DIR/annotations/instances_{train,val}2014.json with COCO's
         real category ids (1..90 with gaps), polygon instances and RLE crowd regions; some
         images have no annotation. util.prepare_coco renders their labels.
"""
import argparse
import json
import multiprocessing
import os
import sys

import numpy as np
from tqdm import tqdm

from util.fileio import atomic_write_text
from util.label_io import write_jpeg_atomic, write_png_atomic
from util.synthetic_scene import render_scene

COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
_SPLIT_CODE = {"train": 0, "val": 1}


def scene(seed, split, k, num_classes, min_size, max_size, crowd_p=0.0):
    """Scene k of a split (see render_scene): its own RNG, random size, main class k mod C + 1."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], k])
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    return render_scene(rng, num_classes, height, width, main_class=k % num_classes + 1, crowd_p=crowd_p)


def _voc_job(job):
    out, split, k, seed, min_size, max_size = job
    name = f"{split}_{k:06d}"
    image, banded, _, _ = scene(seed, split, k, 20, min_size, max_size)
    write_jpeg_atomic(os.path.join(out, "JPEGImages", name + ".jpg"), image)
    write_png_atomic(os.path.join(out, "SegmentationClassAug", name + ".png"), banded)
    return f"JPEGImages/{name}.jpg SegmentationClassAug/{name}.png"


def _rle_uncompressed(mask):
    """COCO's uncompressed RLE of a binary mask: run lengths in column-major order, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def _coco_job(job):
    out, split, k, seed, min_size, max_size, image_id = job
    file_name = f"COCO_{split}2014_{image_id:012d}.jpg"
    image, _, _, objects = scene(seed, split, k, 80, min_size, max_size, crowd_p=0.15)
    write_jpeg_atomic(os.path.join(out, f"{split}2014", file_name), image)
    height, width = image.shape[:2]
    annotations = []
    if k % 25 != 24:  # every 25th image stays unannotated, like a few real COCO images
        for obj in objects:
            x0, y0 = np.clip(obj.polygon.min(0), 0, None)
            x1, y1 = np.minimum(obj.polygon.max(0), [width - 1, height - 1])
            ann = {"image_id": image_id, "category_id": COCO_CATEGORY_IDS[obj.cls - 1],
                   "area": float(obj.area), "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                   "iscrowd": int(obj.crowd)}
            if obj.crowd:
                mask = np.zeros((height, width), dtype=np.uint8)
                mask[y0:y1, x0:x1] = 1
                ann["segmentation"] = _rle_uncompressed(mask)
            else:
                ann["segmentation"] = [obj.polygon.astype(float).flatten().tolist()]
            annotations.append(ann)
    return {"id": image_id, "file_name": file_name, "height": height, "width": width}, annotations


def run_jobs(jobs, fn, workers, desc):
    """[fn(job) for job in jobs] in order, with a progress bar, over `workers` processes."""
    bar = dict(total=len(jobs), desc=desc, file=sys.stderr, leave=False)
    if workers <= 1 or len(jobs) < 32:
        return [fn(j) for j in tqdm(jobs, **bar)]
    with multiprocessing.Pool(workers) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=8), **bar))


def write_voc(out, train=300, val=200, min_size=160, max_size=256, seed=0, workers=1):
    """Write the ready-to-use VOC layout; returns (train list path, val list path)."""
    lists = []
    for split, count in (("train", train), ("val", val)):
        jobs = [(out, split, k, seed, min_size, max_size) for k in range(count)]
        lines = run_jobs(jobs, _voc_job, workers, f"synthetic voc {split}")
        path = os.path.join(out, f"{split}.txt")
        atomic_write_text(path, "\n".join(lines) + "\n")
        lists.append(path)
    return tuple(lists)


def write_coco(out, train=960, val=480, min_size=160, max_size=256, seed=0, workers=1):
    """Write COCO-2014-style images and instances JSON; returns the two JSON paths."""
    paths, next_id = [], 1
    categories = [{"id": cid, "name": f"class{i + 1}", "supercategory": "synthetic"}
                  for i, cid in enumerate(COCO_CATEGORY_IDS)]
    for split, count in (("train", train), ("val", val)):
        jobs = [(out, split, k, seed, min_size, max_size, next_id + k) for k in range(count)]
        next_id += count
        results = run_jobs(jobs, _coco_job, workers, f"synthetic coco {split}")
        annotations = [a for _, anns in results for a in anns]
        for ann_id, ann in enumerate(annotations, start=1):
            ann["id"] = ann_id
        doc = {"info": {"description": "synthetic COCO-style data"}, "images": [r[0] for r in results],
               "annotations": annotations, "categories": categories}
        path = os.path.join(out, "annotations", f"instances_{split}2014.json")
        atomic_write_text(path, json.dumps(doc))
        paths.append(path)
    return tuple(paths)


def main(argv=None):
    """Write a synthetic dataset (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m util.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--format", required=True, choices=("voc", "voc-raw", "coco"))
    parser.add_argument("--train", type=int, help="train images (default 300 voc / voc-raw, 960 coco)")
    parser.add_argument("--val", type=int, help="val images (default 200 voc / voc-raw, 480 coco)")
    parser.add_argument("--min-size", type=int, default=160, help="smallest image side (pixels)")
    parser.add_argument("--max-size", type=int, default=256, help="largest image side (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if not 64 <= args.min_size <= args.max_size:
        parser.error(f"--min-size {args.min_size} / --max-size {args.max_size}: need 64 <= min <= max")
    coco = args.format == "coco"
    train = args.train if args.train is not None else (960 if coco else 300)
    val = args.val if args.val is not None else (480 if coco else 200)
    if train < 1 or val < 1:
        parser.error("--train and --val must be >= 1")
    common = dict(train=train, val=val, min_size=args.min_size, max_size=args.max_size,
                  seed=args.seed, workers=args.workers)
    if coco:
        written = write_coco(args.out, **common)
    elif args.format == "voc":
        written = write_voc(args.out, **common)
    else:
        from util.synthetic_raw import write_voc_raw
        written = write_voc_raw(args.out, **common)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
