"""Segment your own images with a trained model: K support images with their masks show the
object, every query image gets a predicted mask and an overlay.

    python -m tools.predict --config config/pascal_split0.yaml weight=PATH [key=value ...] \
        --support IMG MASK [--support IMG MASK ...] --query IMG [IMG ...] --out DIR

The checkpoint defines the model (test.py's rules: engine/inference.py); the config gives the
input size (`val_size`) and the device. A mask is a single-channel image: pixels above 0 are the
object, except 255, which is ignored (as in the datasets). Images are resized as validation
images are (longer side to val_size, top-left on a square canvas) and the prediction is brought
back to each query's own size. No class id is needed (BAM and MSANet use their base learner's
every base class at inference). For each query QUERY.jpg the folder gets QUERY_mask.png
(object 255, background 0) and QUERY_overlay.png (the prediction in red).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from engine.choices import load_config
from engine.command import add_config_arguments
from engine.inference import load_trained_model
from engine.pictures import PREDICTION_COLOUR, overlay, write_mask_png
from engine.runtime import resolve_device
from util.cli import command_parser, run_main
from util.data.folds import IGNORE_LABEL
from util.data.label_io import read_image, read_label, write_png_atomic
from util.data.transforms import normalise_to_tensor, val_hw, val_resize


def support_mask(path, shape):
    """A support mask file -> binary label (object 1, background 0, 255 kept) of `shape`."""
    label = read_label(path)
    if label.shape != shape:
        raise ValueError(f"mask {path} is {label.shape[1]}x{label.shape[0]} but its image is "
                         f"{shape[1]}x{shape[0]} (width x height)")
    binary = (label > 0).astype(np.uint8)
    binary[label == IGNORE_LABEL] = IGNORE_LABEL
    if not (binary == 1).any():
        raise ValueError(f"mask {path} marks no object pixel (values above 0, 255 aside)")
    return binary


def episode(query, supports, size):
    """The batch dict of one query image (float RGB) with the supports, at the validation size."""
    canvas, _ = val_resize(query, np.zeros(query.shape[:2], np.uint8), size)
    images, masks = [], []
    for image_path, mask_path in supports:
        image = read_image(image_path)
        canvas, label = val_resize(image, support_mask(mask_path, image.shape[:2]), size)
        images.append(normalise_to_tensor(canvas))
        masks.append(torch.from_numpy(label.astype(np.int64)))
    return {"query_img": normalise_to_tensor(canvas)[None], "support_imgs": torch.stack(images)[None],
            "support_masks": torch.stack(masks)[None], "class_id": torch.tensor([0])}


@torch.no_grad()
def predict(model, batch, original_shape, size):
    """The foreground mask (uint8 0/1) at the query's own size."""
    logits = model(batch)["logits"].float()
    height, width = val_hw(*original_shape, size)
    logits = logits[..., :height, :width]  # the resized query sits top-left on the canvas
    logits = F.interpolate(logits, size=original_shape, mode="bilinear", align_corners=True)
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def main(argv=None):
    parser = command_parser("tools.predict", __doc__)
    add_config_arguments(parser)
    parser.add_argument("--support", nargs=2, action="append", required=True, metavar=("IMAGE", "MASK"))
    parser.add_argument("--query", nargs="+", required=True, metavar="IMAGE")
    parser.add_argument("--out", required=True, help="folder for the masks and overlays")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    device = torch.device(resolve_device(cfg.device))
    model, cfg, _, weight = load_trained_model(cfg.replace(shot=len(args.support)), device)
    for query_path in args.query:
        image = read_image(query_path)
        batch = {k: v.to(device) for k, v in episode(image, args.support, cfg.val_size).items()}
        mask = predict(model, batch, image.shape[:2], cfg.val_size)
        stem = os.path.join(args.out, os.path.splitext(os.path.basename(query_path))[0])
        write_mask_png(stem + "_mask.png", mask)
        write_png_atomic(stem + "_overlay.png", overlay(image.astype(np.uint8), mask, PREDICTION_COLOUR))
        print(f"{query_path}: {int(mask.sum())} object pixels of {mask.size} -> {stem}_mask.png, "
              f"{stem}_overlay.png")
    print(f"{len(args.query)} queries segmented with {weight} ({cfg.arch}, {len(args.support)} support(s))")
    return 0


if __name__ == "__main__":
    run_main(main)
