"""Synthetic raw VOC2012 + SBD trees, the input of tools.prepare_pascal.

The id sets overlap like the real ones: SBD train holds some VOC val images (which the merged
train list must drop) and some VOC train images (duplicates to remove); SBD val holds images
of neither plus some VOC train images.
"""
import os

import cv2
import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from util.data.label_io import write_jpeg_atomic
from util.data.lists import write_list
from util.parallel import map_with_progress

from .scene import scene


def voc_palette():
    """The 256-colour palette of VOC's SegmentationClass PNGs (flat RGB list)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [r, g, b]
    return palette


def raw_id_sets(train, val):
    """Ids of VOC train / VOC val / SBD train / SBD val for `train` + `val` synthetic images."""
    ids = [f"2012_{k:06d}" for k in range(train + val)]
    voc_val = ids[:val]
    voc_train = ids[val:val + max(1, train // 3)]
    rest = ids[val + len(voc_train):]
    cut = len(rest) * 2 // 3
    sbd_train = voc_val[val // 2:] + voc_train[len(voc_train) // 2:] + rest[:cut]
    sbd_val = rest[cut:] + voc_train[:2]
    return voc_train, voc_val, sbd_train, sbd_val


def _write_palette_png(path, label):
    img = Image.fromarray(label, mode="P")
    img.putpalette(voc_palette())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path)


def _sbd_mat(path, plain):
    kernel = np.ones((3, 3), np.uint8)
    edges = cv2.dilate(plain, kernel) != cv2.erode(plain, kernel)
    boundaries = np.empty((20, 1), dtype=object)
    for cls in range(1, 21):
        boundaries[cls - 1, 0] = scipy.sparse.csc_matrix((plain == cls) & edges)
    present = np.array([c for c in np.unique(plain) if 0 < c < 255], dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": plain, "Boundaries": boundaries,
                                      "CategoriesPresent": present}}, do_compression=True)


def _raw_job(job):
    out, k, name, in_voc, in_sbd, seed, min_size, max_size = job
    image, banded, plain, _ = scene(seed, "train", k, 20, min_size, max_size)
    voc = os.path.join(out, "VOCdevkit", "VOC2012")
    sbd = os.path.join(out, "benchmark_RELEASE", "dataset")
    write_jpeg_atomic(os.path.join(voc, "JPEGImages", name + ".jpg"), image)
    if in_voc:
        _write_palette_png(os.path.join(voc, "SegmentationClass", name + ".png"), banded)
    if in_sbd:
        write_jpeg_atomic(os.path.join(sbd, "img", name + ".jpg"), image)
        _sbd_mat(os.path.join(sbd, "cls", name + ".mat"), plain)
    return name


def write_voc_raw(out, train=300, val=200, min_size=160, max_size=256, seed=0, workers=1):
    """Write VOCdevkit/VOC2012 and benchmark_RELEASE/dataset under `out`; returns their paths."""
    voc_train, voc_val, sbd_train, sbd_val = raw_id_sets(train, val)
    in_voc, in_sbd = set(voc_train) | set(voc_val), set(sbd_train) | set(sbd_val)
    names = [f"2012_{k:06d}" for k in range(train + val)]
    jobs = [(out, k, n, n in in_voc, n in in_sbd, seed, min_size, max_size) for k, n in enumerate(names)]
    map_with_progress(_raw_job, jobs, workers, "synthetic voc-raw", chunksize=8, serial_below=32)
    voc = os.path.join(out, "VOCdevkit", "VOC2012")
    sbd = os.path.join(out, "benchmark_RELEASE")
    for path, ids in ((os.path.join(voc, "ImageSets", "Segmentation", "train.txt"), voc_train),
                      (os.path.join(voc, "ImageSets", "Segmentation", "val.txt"), voc_val),
                      (os.path.join(sbd, "dataset", "train.txt"), sbd_train),
                      (os.path.join(sbd, "dataset", "val.txt"), sbd_val)):
        write_list(path, ids)
    return voc, sbd
