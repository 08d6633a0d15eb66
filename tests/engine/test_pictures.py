"""Episode pictures: the overlay colours exactly the mask's pixels, the panel holds the tiles
it names at the expected size, and the files carry what they show (IoU in the name)."""
import os

import cv2
import numpy as np
import pytest
import torch

from engine import pictures
from util.data.transforms import MEAN, STD

H, W = 20, 24


def normalised(rgb):
    """uint8 [H, W, 3] -> the normalised [3, H, W] tensor the datasets yield."""
    return torch.from_numpy(((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1))


def episode(shot=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(shot + 1, H, W, 3), dtype=np.uint8)
    masks = torch.from_numpy(rng.integers(0, 2, size=(shot + 1, H, W))).long()
    masks[:, 0, :] = 255  # an ignored row, never coloured
    batch = {"query_img": normalised(images[0])[None], "query_mask": masks[:1],
             "support_imgs": torch.stack([normalised(im) for im in images[1:]])[None],
             "support_masks": masks[None, 1:], "class_id": torch.tensor([7]),
             "index": torch.tensor([42])}
    return batch, images


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_to_rgb_undoes_the_normalisation():
    _, images = episode()
    assert np.array_equal(pictures.to_rgb(normalised(images[0])), images[0])


def test_overlay_colours_exactly_the_mask_pixels():
    _, images = episode()
    mask = np.zeros((H, W), np.int64)
    mask[3:9, 5:15] = 1
    mask[0, :] = 255
    out = pictures.overlay(images[0], mask, (255, 0, 0), alpha=0.5)
    changed = np.any(out != images[0], axis=2)
    inside = mask == 1
    assert not changed[~inside].any()  # outside the mask (255 included) nothing moves
    expected = np.rint(0.5 * images[0][inside].astype(np.float32) + 0.5 * np.array([255, 0, 0]))
    assert np.array_equal(out[inside], expected.astype(np.uint8))


def test_prediction_mask_is_the_argmax_of_two_way_logits():
    logits = torch.zeros(1, 2, 3, 3)
    logits[0, 1, 1, 1] = 1.0
    mask = pictures.prediction_mask(logits)
    assert mask.shape == (1, 3, 3) and mask.sum() == 1 and mask[0, 1, 1] == 1


def test_foreground_iou_ignores_255():
    target = torch.tensor([[1, 1, 0, 255]])
    assert pictures.foreground_iou(torch.tensor([[1, 0, 0, 1]]), target) == pytest.approx(0.5)
    assert pictures.foreground_iou(torch.zeros(1, 4), torch.zeros(1, 4)) == 1.0


def test_panel_has_every_tile_at_the_expected_place():
    batch, images = episode(shot=2)
    prediction = torch.zeros(H, W, dtype=torch.long)
    prediction[5:10, 5:10] = 1
    panel = pictures.episode_panel(batch, prediction)
    gap = pictures.GAP
    assert panel.shape == (H, 4 * W + 3 * gap, 3) and panel.dtype == np.uint8
    tiles = [panel[:, i * (W + gap): i * (W + gap) + W] for i in range(4)]
    for k in range(2):
        assert np.array_equal(tiles[k], pictures.overlay(images[k + 1], batch["support_masks"][0, k],
                                                         pictures.SUPPORT_COLOUR))
    assert np.array_equal(tiles[2], pictures.overlay(images[0], prediction,
                                                     pictures.PREDICTION_COLOUR))
    assert np.array_equal(tiles[3], pictures.overlay(images[0], batch["query_mask"][0],
                                                     pictures.GROUND_TRUTH_COLOUR))
    assert (panel[:, W:W + gap] == 255).all()


def test_episode_file_carries_the_iou_and_the_panel(tmp_path):
    batch, _ = episode(shot=1)
    prediction = pictures.prediction_mask(torch.randn(2, H, W, generator=torch.Generator().manual_seed(1)))
    path = pictures.write_episode(str(tmp_path / "vis"), batch, prediction)
    iou = pictures.foreground_iou(prediction, batch["query_mask"][0])
    assert os.path.basename(path) == f"00042_class7_iou{100 * iou:.2f}.png"
    assert 0 < iou < 1
    assert np.array_equal(read_rgb(path), pictures.episode_panel(batch, prediction))


def test_mask_png_is_foreground_255(tmp_path):
    mask = np.array([[0, 1], [255, 1]])
    path = pictures.write_mask_png(str(tmp_path / "m.png"), mask)
    assert np.array_equal(cv2.imread(path, cv2.IMREAD_UNCHANGED), [[0, 255], [0, 255]])
