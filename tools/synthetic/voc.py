"""The ready-to-train synthetic VOC layout: JPEGImages/, SegmentationClassAug/ (class ids,
255 bands) and the lists train.txt / val.txt."""
import os

from util.data.label_io import write_jpeg_atomic, write_png_atomic
from util.data.lists import write_list
from util.parallel import map_with_progress

from .scene import scene


def _voc_job(job):
    out, split, k, seed, min_size, max_size = job
    name = f"{split}_{k:06d}"
    image, banded, _, _ = scene(seed, split, k, 20, min_size, max_size)
    write_jpeg_atomic(os.path.join(out, "JPEGImages", name + ".jpg"), image)
    write_png_atomic(os.path.join(out, "SegmentationClassAug", name + ".png"), banded)
    return f"JPEGImages/{name}.jpg SegmentationClassAug/{name}.png"


def write_voc(out, train=300, val=200, min_size=160, max_size=256, seed=0, workers=1):
    """Write the ready-to-use VOC layout; returns (train list path, val list path)."""
    lists = []
    for split, count in (("train", train), ("val", val)):
        jobs = [(out, split, k, seed, min_size, max_size) for k in range(count)]
        lines = map_with_progress(_voc_job, jobs, workers, f"synthetic voc {split}", chunksize=8,
                                  serial_below=32)
        path = os.path.join(out, f"{split}.txt")
        write_list(path, lines)
        lists.append(path)
    return tuple(lists)
