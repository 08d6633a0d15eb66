"""Pieces shared by the episode and base-learner datasets: per-sample RNGs, an epoch counter
that DataLoader workers see, defaults per dataset, and reading an (image, label) pair."""
import os

import numpy as np
import torch

from util.label_io import read_image, read_label

# Protocol defaults (PROTOCOL.md "Transforms"; BAM's base-learner configs).
EPISODE_DEFAULTS = {
    "pascal": {"train_size": 473, "val_size": 473, "scale_range": (0.9, 1.1)},
    "coco": {"train_size": 641, "val_size": 641, "scale_range": (0.8, 1.25)},
}
BASE_DEFAULTS = {"train_size": 417, "val_size": 417, "scale_range": (0.5, 2.0)}


def sample_rng(seed, epoch, index):
    """The generator of one sample: a function of (seed, epoch, index) only, so a sample never
    depends on the number of DataLoader workers, the batch size or what was drawn before."""
    for name, value in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class SharedEpoch:
    """An epoch number kept in shared memory: `set` in the main process is seen by DataLoader
    workers, persistent ones included (they get the same storage when they start)."""

    def __init__(self):
        self._value = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set(self, epoch):
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._value[0] = int(epoch)

    def get(self):
        return int(self._value[0])


def check_choice(name, value, choices):
    """Raise a one-line ValueError unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} {value!r} is invalid; expected one of {list(choices)}")
    return value


def check_range(name, value):
    """A (low, high) pair of numbers with low <= high, as a tuple of floats."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is invalid; expected two numbers [low, high]") from None
    if low > high:
        raise ValueError(f"{name} {value!r} is invalid; low must not exceed high")
    return low, high


def read_pair(data_root, pair):
    """Read (image float32 RGB [H, W, 3], label uint8 [H, W]) of a list entry; sizes must agree."""
    image_path, label_path = (os.path.join(data_root, p) for p in pair)
    image, label = read_image(image_path), read_label(label_path)
    if image.shape[:2] != label.shape:
        raise ValueError(f"label {label_path} is {label.shape[1]}x{label.shape[0]} but image "
                         f"{image_path} is {image.shape[1]}x{image.shape[0]} (width x height)")
    return image, label


def image_id(pair):
    """The image's file name without directory and extension (e.g. 2007_000032)."""
    return os.path.splitext(os.path.basename(pair[0]))[0]
