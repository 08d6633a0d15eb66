"""Per-image class pixel counts of a list file: computed once in parallel, cached as JSON.

Every fold, both modes and both filter settings derive from these counts in milliseconds
(util/data/index.py), so a list is read label by label only once per (list content, data root).
The cache lives in `cache_dir` (lists/cache/ by default), named after the list file and a
SHA-256 of the list's bytes and the data root's real path. It holds no paths at all (they come
from the list, relative to data_root) but three flat little-endian integer arrays, base64 in
JSON so that a warm start on a COCO-sized list stays well under a second: per line an offset
(int64), and per (line, value) the label value (uint8) and its pixel count (int64), for every
value other than 0 and 255.
Editing labels in place does not change the key: rebuild with `rebuild=True`
(`python -m tools.index ... --rebuild`).
"""
import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from util.data.label_io import image_size, read_label
from util.data.lists import parse_list, read_list_bytes
from util.fileio import REPO_ROOT, atomic_write_json
from util.parallel import map_with_progress

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = os.path.join(REPO_ROOT, "lists", "cache")


@dataclass
class LabelStats:
    """Class pixel counts of every line of a list file.

    pairs: (image, label) paths as written in the list (relative to data_root).
    offsets: int64 [lines + 1]; the values of line i are values[offsets[i]:offsets[i + 1]].
    values: uint8, the label values present in a line except 0 and 255, ascending.
    pixels: int64, the pixel count of each entry of `values`.
    from_cache: whether the counts were loaded from the cache; seconds: time taken.
    """
    list_file: str
    data_root: str
    pairs: list
    offsets: np.ndarray
    values: np.ndarray
    pixels: np.ndarray
    from_cache: bool
    seconds: float

    def line_of_entry(self):
        """int64 [entries]: the line number (0-based) of every entry."""
        return np.repeat(np.arange(len(self.pairs)), np.diff(self.offsets))


def check_data_root(data_root):
    """Raise FileNotFoundError unless data_root is an existing directory."""
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data_root {data_root} does not exist or is not a directory")


def cache_path(list_file, data_root, raw, cache_dir):
    """Cache file of this list content and data root."""
    digest = hashlib.sha256()
    digest.update(f"label-stats-v{CACHE_VERSION}\0{os.path.realpath(data_root)}\0".encode())
    digest.update(raw)
    stem = os.path.splitext(os.path.basename(list_file))[0]
    return os.path.join(cache_dir, f"{stem}-{digest.hexdigest()[:20]}.json")


def line_stats(task):
    """Class pixel counts of one list line; checks the image header and the label's size."""
    data_root, image_rel, label_rel, where = task
    image_path = os.path.join(data_root, image_rel)
    label_path = os.path.join(data_root, label_rel)
    try:
        label = read_label(label_path)
        height, width = image_size(image_path)
    except (OSError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None
    if label.shape != (height, width):
        raise ValueError(f"{where}: label {label_path} is {label.shape[1]}x{label.shape[0]} but image "
                         f"{image_path} is {width}x{height} (width x height)")
    if label.size < 1 << 24:  # calcHist counts in float32: exact below 2**24 pixels, and fast
        counts = cv2.calcHist([label], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(label.ravel(), minlength=256)
    counts[0] = counts[255] = 0
    present = np.flatnonzero(counts)
    flat = np.empty(2 * present.size, dtype=np.int64)
    flat[0::2], flat[1::2] = present, counts[present]
    return flat.tolist()


def _compute(pairs, data_root, list_file, workers, progress):
    tasks = [(data_root, img, lbl, f"list {list_file} line {n}") for n, (img, lbl) in enumerate(pairs, 1)]
    return map_with_progress(line_stats, tasks, workers, f"reading labels of {os.path.basename(list_file)}",
                             serial_below=64, progress=progress)


_ARRAYS = {"offsets": np.int64, "values": np.uint8, "pixels": np.int64}  # stored little-endian


def _load_cache(path, lines):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            cached = json.load(handle)
        arrays = [np.frombuffer(base64.b64decode(cached[name]), dtype=np.dtype(dtype).newbyteorder("<"))
                  .astype(dtype) for name, dtype in _ARRAYS.items()]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    offsets, values, pixels = arrays
    if (cached.get("version") != CACHE_VERSION or offsets.shape != (lines + 1,)
            or values.shape != pixels.shape or offsets[-1] != values.size):
        return None
    return offsets, values, pixels


def _encode(array, dtype):
    little = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return base64.b64encode(little.tobytes()).decode("ascii")


def _flatten(per_line):
    offsets = np.zeros(len(per_line) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(flat) // 2 for flat in per_line])
    merged = np.fromiter((v for flat in per_line for v in flat), dtype=np.int64, count=2 * int(offsets[-1]))
    return offsets, merged[0::2].astype(np.uint8), merged[1::2].copy()


def compute_label_stats(list_file, data_root, cache_dir=DEFAULT_CACHE_DIR, workers=None,
                        rebuild=False, progress=True):
    """Class pixel counts of every line of `list_file` (paths relative to `data_root`).

    Loaded from `cache_dir` when present (cache_dir=None disables caching); otherwise every
    label is read with `workers` processes (default: all CPUs) and the result is cached
    atomically. Raises FileNotFoundError / ValueError naming the list line for a missing data
    root, list, image or label, an undecodable file, or a label whose size differs from its image.
    """
    start = time.perf_counter()
    check_data_root(data_root)
    raw = read_list_bytes(list_file)
    path = cache_path(list_file, data_root, raw, cache_dir) if cache_dir else None
    if path and not rebuild and os.path.isfile(path):
        # The cache key is the list's content, validated by parse_list when the cache was written.
        tokens = raw.decode("utf-8").split()
        pairs = list(zip(tokens[0::2], tokens[1::2]))
        cached = _load_cache(path, len(pairs))
        if cached is not None:
            return LabelStats(list_file, data_root, pairs, *cached, True, time.perf_counter() - start)
    pairs = parse_list(raw, list_file)
    offsets, values, pixels = _flatten(_compute(pairs, data_root, list_file, workers, progress))
    if path:
        atomic_write_json(path, {"version": CACHE_VERSION, "list_file": os.path.basename(list_file),
                                 "lines": len(pairs),
                                 **{name: _encode(arr, dtype) for (name, dtype), arr
                                    in zip(_ARRAYS.items(), (offsets, values, pixels))}})
    return LabelStats(list_file, data_root, pairs, offsets, values, pixels, False,
                      time.perf_counter() - start)
