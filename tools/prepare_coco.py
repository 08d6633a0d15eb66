"""COCO 2014 instances JSON -> label PNGs (class ids 1..80, 0 background) and COCO-20i lists.

    python -m tools.prepare_coco --coco-root DIR [--list-dir lists/coco] [--crowd class|ignore]
        [--workers N] [--overwrite]

DIR holds train2014/, val2014/ and annotations/instances_{train,val}2014.json. Writes
DIR/annotations/{train,val}2014/X.png and the lists train.txt / val.txt
(`train2014/X.jpg annotations/train2014/X.png`, relative to DIR, the data_root) of every image
with at least one annotation (82081 / 40137 images on COCO 2014), in file-name order.
Category ids (1..90 with gaps) become 1..80 in ascending order.
Overlaps: instances are painted in decreasing order of their annotated area, so where two
overlap the smaller one is on top (ties: annotation order). Crowd regions (iscrowd=1):
`--crowd class` (default) paints them with their class first, below every instance;
`--crowd ignore` sets their pixels that no instance covers to 255. Rerunning skips the PNGs
already written with the same --crowd (annotations/<split>2014/.prepare.json records it);
another --crowd stops with one line unless --overwrite. The JSON is checked field by field.
"""
import os
import warnings

import numpy as np
from pycocotools import mask as mask_utils

from tools.coco_annotations import read_instances
from tools.prepared import claim_label_folder, prepare_parser, record_options
from util.cli import run_main
from util.data.label_io import write_png_atomic
from util.data.lists import write_list
from util.parallel import map_with_progress

SPLITS = ("train", "val")


def decode_segmentation(segmentation, height, width):
    """Binary mask (uint8 [H, W]) of a COCO polygon list, uncompressed RLE or compressed RLE."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():  # pycocotools' decode trips a numpy 2 DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def render_label(height, width, instances, crowd="class"):
    """Label map of one image from [(class, segmentation, iscrowd, area), ...] (see module doc)."""
    label = np.zeros((height, width), dtype=np.uint8)
    crowds = [inst for inst in instances if inst[2]]
    things = sorted((inst for inst in instances if not inst[2]), key=lambda inst: -inst[3])
    if crowd == "class":
        for cls, segmentation, _, _ in crowds:
            label[decode_segmentation(segmentation, height, width) > 0] = cls
    covered = np.zeros((height, width), dtype=bool)
    for cls, segmentation, _, _ in things:
        mask = decode_segmentation(segmentation, height, width) > 0
        label[mask] = cls
        covered |= mask
    if crowd == "ignore":
        for _, segmentation, _, _ in crowds:
            label[(decode_segmentation(segmentation, height, width) > 0) & ~covered] = 255
    return label


def _render(task):
    out, height, width, instances, crowd = task
    if os.path.isfile(out):
        return False
    write_png_atomic(out, render_label(height, width, instances, crowd))
    return True


def load_tasks(coco_root, split, crowd):
    """(list lines, render tasks) of one split, from its instances JSON."""
    category_ids, images, annotations = read_instances(
        os.path.join(coco_root, "annotations", f"instances_{split}2014.json"))
    to_class = {cid: k + 1 for k, cid in enumerate(category_ids)}
    per_image = {}
    for ann in annotations:
        per_image.setdefault(ann["image_id"], []).append(
            (to_class[ann["category_id"]], ann["segmentation"], int(ann.get("iscrowd", 0)), float(ann["area"])))
    lines, tasks = [], []
    for image in sorted(images, key=lambda im: im["file_name"]):
        if image["id"] not in per_image:
            continue
        stem = os.path.splitext(image["file_name"])[0]
        label_rel = f"annotations/{split}2014/{stem}.png"
        lines.append(f"{split}2014/{image['file_name']} {label_rel}")
        tasks.append((os.path.join(coco_root, label_rel), image["height"], image["width"],
                      per_image[image["id"]], crowd))
    return lines, tasks


def prepare_coco(coco_root, list_dir, crowd="class", workers=None, overwrite=False):
    """Render the label PNGs of both splits and write the lists; returns the list paths."""
    if not os.path.isdir(coco_root):
        raise FileNotFoundError(f"--coco-root {coco_root} does not exist or is not a directory")
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd {crowd!r} is invalid; expected 'class' or 'ignore'")
    paths = []
    for split in SPLITS:
        lines, tasks = load_tasks(coco_root, split, crowd)
        labels = os.path.join(coco_root, "annotations", f"{split}2014")
        claim_label_folder(labels, {"crowd": crowd}, [t[0] for t in tasks], overwrite, f"--crowd {crowd}")
        written = sum(map_with_progress(_render, tasks, workers, f"labels {split}2014", chunksize=32,
                                        ordered=False))
        record_options(labels, {"crowd": crowd})
        paths.append(write_list(os.path.join(list_dir, f"{split}.txt"), lines))
        print(f"{split}2014: {len(lines)} annotated images, {written} labels written, "
              f"{len(tasks) - written} already there")
    return tuple(paths)


def main(argv=None):
    """Command line of prepare_coco (see the module docstring)."""
    parser = prepare_parser("tools.prepare_coco", __doc__, "coco")
    parser.add_argument("--coco-root", required=True, help="holds train2014/, val2014/, annotations/")
    parser.add_argument("--crowd", default="class", choices=("class", "ignore"),
                        help="crowd regions: painted with their class (default) or 255")
    args = parser.parse_args(argv)
    prepare_coco(args.coco_root, args.list_dir, args.crowd, args.workers, args.overwrite)
    return 0


if __name__ == "__main__":
    run_main(main)
