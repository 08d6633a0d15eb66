"""Train and val transforms of PFENet / BAM (docs/protocol.md, Transforms), with OpenCV and an
explicit RNG.

Images are float32 RGB [H, W, 3] in 0..255; labels are uint8 maps of raw class ids. Every
geometric step resamples the label with nearest neighbour and fills it with 255, which commutes
with the pointwise remaps to binary / base-class masks, so one pass over the raw label serves
every mask derived from it. Every random draw comes from the numpy Generator passed in.
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from util.data.folds import IGNORE_LABEL

MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
_MEAN32 = np.array(MEAN, dtype=np.float32)
_STD32 = np.array(STD, dtype=np.float32)


def random_scale(image, label, rng, scale_range):
    """Resize by one factor drawn uniformly in scale_range: image bilinear, label nearest."""
    low, high = scale_range
    factor = low + (high - low) * rng.random()
    image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return image, label


def random_rotate(image, label, rng, angle_range, p):
    """With probability p rotate about the centre by an angle (degrees) uniform in angle_range;
    the image border is the mean colour, the label border 255."""
    if rng.random() >= p:
        return image, label
    low, high = angle_range
    angle = low + (high - low) * rng.random()
    height, width = label.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1)
    image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=MEAN)
    label = cv2.warpAffine(label, matrix, (width, height), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_LABEL)
    return image, label


def random_blur(image, rng, p, kernel=5):
    """With probability p apply a kernel x kernel Gaussian blur (sigma from the kernel size)."""
    if rng.random() < p:
        image = cv2.GaussianBlur(image, (kernel, kernel), 0)
    return image


def random_hflip(image, label, rng, p):
    """With probability p flip both horizontally."""
    if rng.random() < p:
        image, label = cv2.flip(image, 1), cv2.flip(label, 1)
    return image, label


def pad_to(image, label, size):
    """Pad to at least size x size, split evenly (the extra pixel at the bottom / right):
    image with the mean colour, label with 255."""
    height, width = label.shape
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if pad_h == 0 and pad_w == 0:
        return image, label
    top, left = pad_h // 2, pad_w // 2
    borders = (top, pad_h - top, left, pad_w - left)
    image = cv2.copyMakeBorder(image, *borders, cv2.BORDER_CONSTANT, value=MEAN)
    label = cv2.copyMakeBorder(label, *borders, cv2.BORDER_CONSTANT, value=IGNORE_LABEL)
    return image, label


def random_crop(image, label, rng, size, target=None, keep=0.85, retries=31):
    """Pad (see pad_to), then crop size x size at a uniform offset. When `target` is given and
    the crop holds fewer than keep * (target pixels of the padded label), draw again, at most
    `retries` more times (PFENet's loop `while ... and crop_cnt <= 30` draws 31 more); the
    last draw is kept."""
    image, label = pad_to(image, label, size)
    height, width = label.shape
    total = int(np.count_nonzero(label == target)) if target is not None else 0
    for _ in range(retries + 1):
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        crop_label = label[top:top + size, left:left + size]
        if total == 0 or np.count_nonzero(crop_label == target) >= keep * total:
            break
    return image[top:top + size, left:left + size], crop_label


@dataclass(frozen=True)
class TrainAugment:
    """The train pipeline: scale, rotate, blur, flip, crop (docs/protocol.md, Transforms). The
    datasets set crop_size and scale_range from the config (train_size, train_scale); the other
    fields are the protocol's values.

    `crop_keep` / `crop_retries` drive the crop retry loop, which only runs when a target class
    is passed (episodes); the base-learner pipeline passes none.
    """
    crop_size: int
    scale_range: tuple = (0.9, 1.1)
    rotate_range: tuple = (-10.0, 10.0)
    rotate_p: float = 0.5
    blur_p: float = 0.5
    blur_kernel: int = 5
    flip_p: float = 0.5
    crop_keep: float = 0.85
    crop_retries: int = 31

    def __post_init__(self):
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range {tuple(self.scale_range)} is invalid; expected 0 < low <= high")

    def __call__(self, image, label, rng, target=None):
        image, label = random_scale(image, label, rng, self.scale_range)
        image, label = random_rotate(image, label, rng, self.rotate_range, self.rotate_p)
        image = random_blur(image, rng, self.blur_p, self.blur_kernel)
        image, label = random_hflip(image, label, rng, self.flip_p)
        return random_crop(image, label, rng, self.crop_size, target, self.crop_keep, self.crop_retries)


def val_hw(height, width, size):
    """Size (h, w) of a val image: the longer side becomes `size`, the other side keeps the
    aspect ratio (truncated), then both are floored to a multiple of 8 (PFENet's find_new_hw)."""
    if height >= width:
        new_h, new_w = size, int(width * (size / height))
    else:
        new_h, new_w = int(height * (size / width)), size
    return new_h // 8 * 8, new_w // 8 * 8


def val_resize(image, label, size):
    """Resize (image bilinear, label nearest) to val_hw and place top-left on a size x size
    canvas: image 0 (before normalisation), label 255."""
    new_h, new_w = val_hw(*label.shape, size)
    if (new_h, new_w) != label.shape:
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    image_canvas = np.zeros((size, size, 3), dtype=np.float32)
    label_canvas = np.full((size, size), IGNORE_LABEL, dtype=np.uint8)
    image_canvas[:new_h, :new_w] = image
    label_canvas[:new_h, :new_w] = label
    return image_canvas, label_canvas


def normalise_into(image, out):
    """Write the normalised channels-first copy of float32 RGB [H, W, 3] (0..255) into the
    float32 array `out` [3, H, W] (e.g. a view of a preallocated batch tensor)."""
    chw = image.transpose(2, 0, 1)
    np.subtract(chw, _MEAN32[:, None, None], out=out)
    np.divide(out, _STD32[:, None, None], out=out)
    return out


def normalise_to_tensor(image):
    """float32 RGB [H, W, 3] in 0..255 -> normalised float32 tensor [3, H, W]."""
    out = torch.empty((3,) + image.shape[:2], dtype=torch.float32)
    normalise_into(image, out.numpy())
    return out


def mask_to_tensor(mask):
    """uint8 mask [H, W] -> int64 tensor [H, W]."""
    return torch.from_numpy(mask.astype(np.int64))


def top_left_canvas(mask):
    """Place a mask top-left in an L x L canvas of 255, L = its longer side."""
    side = max(mask.shape)
    canvas = np.full((side, side), IGNORE_LABEL, dtype=mask.dtype)
    canvas[: mask.shape[0], : mask.shape[1]] = mask
    return canvas
