"""Episode pictures: an image with a mask blended in, a binary mask as PNG, and one panel per
episode (each support with its mask, the query with the prediction, the query with the ground
truth), written with the episode's IoU in its file name, as HSNet's --visualize does.

Pure functions of arrays and a batch dict (docs/ARCHITECTURE.md, the batch dict); no model
code. Images arrive normalised (util/data/transforms.py MEAN / STD) and are un-normalised here.
"""
import os

import cv2
import numpy as np
import torch

from engine.metrics import intersection_union, predictions
from util.data.label_io import write_png_atomic
from util.data.transforms import MEAN, STD

SUPPORT_COLOUR = (102, 140, 255)      # blue
PREDICTION_COLOUR = (255, 50, 50)     # red
GROUND_TRUTH_COLOUR = (50, 205, 50)   # green
ALPHA = 0.5                           # weight of the colour where the mask is foreground
GAP = 8                               # white pixels between the panel's tiles


def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_rgb(image):
    """A normalised image [3, H, W] (tensor or array) -> uint8 RGB [H, W, 3]."""
    image = _numpy(image).astype(np.float32).transpose(1, 2, 0)
    return np.clip(np.rint(image * np.array(STD) + np.array(MEAN)), 0, 255).astype(np.uint8)


def foreground(mask):
    """The foreground pixels of a binary mask (1), as bool; 0 and 255 (ignored) are not."""
    return _numpy(mask) == 1


def overlay(rgb, mask, colour, alpha=ALPHA):
    """`rgb` (uint8 [H, W, 3]) with `colour` blended in where `mask` is 1; every other pixel
    is returned unchanged."""
    out = rgb.copy()
    where = foreground(mask)
    blended = (1 - alpha) * rgb[where].astype(np.float32) + alpha * np.array(colour, np.float32)
    out[where] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def prediction_mask(logits):
    """The predicted mask of 2-way logits ([2, h, w] or [B, 2, h, w]): argmax, 1 = foreground."""
    logits = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
    return logits.argmax(dim=-3)


def foreground_iou(prediction, target):
    """The foreground IoU of one prediction against its binary target (255 ignored); 1.0 when
    both are empty."""
    inter, union = intersection_union(torch.as_tensor(_numpy(prediction)),
                                      torch.as_tensor(_numpy(target)), 2)
    return 1.0 if union[1] == 0 else float(inter[1] / union[1])


def write_mask_png(path, mask):
    """A binary mask as an 8-bit PNG: foreground 255, everything else 0 (written atomically)."""
    write_png_atomic(path, np.where(foreground(mask), 255, 0).astype(np.uint8))
    return path


def _fit(mask, shape):
    mask = _numpy(mask).astype(np.uint8)
    if mask.shape == shape:
        return mask
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def episode_panel(batch, prediction, sample=0):
    """One RGB picture of episode `sample` of `batch`: the K supports with their masks, the
    query with `prediction` ([H, W], 1 = foreground), the query with its ground truth; tiles
    of the image size side by side, GAP white pixels apart: [H, (K + 2) W + (K + 1) GAP, 3]."""
    query = to_rgb(batch["query_img"][sample])
    shape = query.shape[:2]
    tiles = [overlay(to_rgb(image), _fit(mask, shape), SUPPORT_COLOUR)
             for image, mask in zip(batch["support_imgs"][sample], batch["support_masks"][sample])]
    tiles.append(overlay(query, _fit(prediction, shape), PREDICTION_COLOUR))
    tiles.append(overlay(query, _fit(batch["query_mask"][sample], shape), GROUND_TRUTH_COLOUR))
    gap = np.full((shape[0], GAP, 3), 255, np.uint8)
    parts = [part for tile in tiles for part in (tile, gap)][:-1]
    return np.concatenate(parts, axis=1)


def episode_file_name(batch, sample, iou):
    """<episode index>_class<id>_iou<IoU in percent>.png, e.g. 00042_class7_iou63.51.png."""
    index = int(_numpy(batch["index"][sample])) if "index" in batch else sample
    class_id = int(_numpy(batch["class_id"][sample]))
    return f"{index:05d}_class{class_id}_iou{100 * iou:.2f}.png"


def episode_picture(batch, prediction, sample=0):
    """(file name, panel) of episode `sample`: episode_panel, named by episode_file_name with
    the IoU of `prediction` against the query mask at the input resolution."""
    target = _numpy(batch["query_mask"][sample])
    iou = foreground_iou(_fit(prediction, target.shape), target)
    return episode_file_name(batch, sample, iou), episode_panel(batch, prediction, sample)


def write_episode(out_dir, batch, prediction, sample=0):
    """Write episode_picture's panel as PNG into `out_dir`; returns the path."""
    name, panel = episode_picture(batch, prediction, sample)
    path = os.path.join(out_dir, name)
    write_png_atomic(path, panel)
    return path


class EpisodePictures:
    """The pictures of the first `count` episodes an evaluation sees (an `on_batch` callback
    of engine.evaluate.evaluate): written as PNG into `out_dir` when it is given, otherwise
    kept in `panels` as (name, RGB array) for tensorboard. The prediction is the argmax of
    the "logits" output upsampled to the query's input resolution."""

    def __init__(self, count, out_dir=None):
        self.left, self.out_dir, self.panels, self.written = count, out_dir, [], []

    def __call__(self, batch, outputs):
        if self.left <= 0:
            return
        batch = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        predicted, _, _ = next(predictions(outputs["logits"].cpu(), batch, "query_mask", False))
        for sample in range(min(self.left, predicted.shape[0])):
            if self.out_dir is None:
                self.panels.append(episode_picture(batch, predicted[sample], sample))
            else:
                self.written.append(write_episode(self.out_dir, batch, predicted[sample], sample))
            self.left -= 1
