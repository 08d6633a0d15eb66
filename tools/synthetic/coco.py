"""Synthetic COCO 2014: {train,val}2014/*.jpg and annotations/instances_{train,val}2014.json
with COCO's real category ids (1..90 with gaps), polygon instances and RLE crowd regions."""
import json
import os

import numpy as np

from util.data.label_io import write_jpeg_atomic
from util.fileio import atomic_write_text
from util.parallel import map_with_progress

from .scene import scene

COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


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


def write_coco(out, train=960, val=480, min_size=160, max_size=256, seed=0, workers=1):
    """Write COCO-2014-style images and instances JSON; returns the two JSON paths."""
    paths, next_id = [], 1
    categories = [{"id": cid, "name": f"class{i + 1}", "supercategory": "synthetic"}
                  for i, cid in enumerate(COCO_CATEGORY_IDS)]
    for split, count in (("train", train), ("val", val)):
        jobs = [(out, split, k, seed, min_size, max_size, next_id + k) for k in range(count)]
        next_id += count
        results = map_with_progress(_coco_job, jobs, workers, f"synthetic coco {split}", chunksize=8,
                                    serial_below=32)
        annotations = [a for _, anns in results for a in anns]
        for ann_id, ann in enumerate(annotations, start=1):
            ann["id"] = ann_id
        doc = {"info": {"description": "synthetic COCO-style data"}, "images": [r[0] for r in results],
               "annotations": annotations, "categories": categories}
        path = os.path.join(out, "annotations", f"instances_{split}2014.json")
        atomic_write_text(path, json.dumps(doc))
        paths.append(path)
    return tuple(paths)
