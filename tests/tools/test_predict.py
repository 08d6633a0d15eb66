"""tools.predict: own images in, a mask and an overlay per query out, at the query's size; the
mask is the model's prediction, the overlay colours exactly its pixels; BAM needs no class id."""
import os

import numpy as np
import pytest

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.choices import load_config
from model.registry import build_model
from tests.helpers.model import randomise
from tools.predict import episode, main as predict_main, predict
from util.data.folds import get_fold
from util.data.label_io import read_image, read_label, write_jpeg_atomic, write_png_atomic
from util.fileio import REPO_ROOT


def own_images(folder):
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in {"s1": (70, 90), "q1": (80, 60), "q2": (50, 100)}.items():
        write_jpeg_atomic(str(folder / f"{name}.jpg"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths[name] = str(folder / f"{name}.jpg")
    mask = np.zeros((70, 90), np.uint8)
    mask[10:50, 20:60] = 3  # any value above 0 is the object
    mask[0, :] = 255
    write_png_atomic(str(folder / "s1_mask.png"), mask)
    paths["s1_mask"] = str(folder / "s1_mask.png")
    return paths


@pytest.mark.parametrize("arch", ["baseline", "bam"])
def test_masks_and_overlays_of_own_images(tmp_path, arch):
    cfg = load_config(os.path.join(REPO_ROOT, "config", "pascal_split0.yaml"),
                      [f"arch={arch}", "pretrained=", "val_size=65", "reduce_dim=32", "device=cpu"])
    model, _ = build_model(cfg, get_fold("pascal", 0), load_weights=False, finetune=False)
    randomise(model, seed=3)
    weight = str(tmp_path / "model.pth")
    save_checkpoint(weight, INFERENCE, model.state_dict(), cfg)  # every weight in the file
    paths = own_images(tmp_path)
    out = tmp_path / "out"
    code = predict_main(["--config", os.path.join(REPO_ROOT, "config", "pascal_split0.yaml"), f"arch={arch}",
                         f"weight={weight}", "val_size=65", "reduce_dim=32", "device=cpu",
                         "--support", paths["s1"], paths["s1_mask"], "--query", paths["q1"], paths["q2"],
                         "--out", str(out)])
    assert code == 0
    model.eval()
    for name, shape in (("q1", (80, 60)), ("q2", (50, 100))):
        mask = read_label(str(out / f"{name}_mask.png"))
        assert mask.shape == shape and set(np.unique(mask).tolist()) <= {0, 255}
        image = read_image(paths[name])
        expected = predict(model, episode(image, [(paths["s1"], paths["s1_mask"])], 65), shape, 65)
        np.testing.assert_array_equal(mask == 255, expected == 1)
        over = read_image(str(out / f"{name}_overlay.png"))
        coloured = np.abs(over - image).sum(2) > 3  # JPEG-free PNG: only blended pixels move
        np.testing.assert_array_equal(coloured, expected == 1)


def test_a_mask_without_object_is_one_line(tmp_path):
    paths = own_images(tmp_path)
    write_png_atomic(paths["s1_mask"], np.zeros((70, 90), np.uint8))
    with pytest.raises(ValueError, match=r"s1_mask.png marks no object pixel"):
        episode(read_image(paths["q1"]), [(paths["s1"], paths["s1_mask"])], 65)
    write_png_atomic(paths["s1_mask"], np.ones((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"s1_mask.png is 20x20 but its image is 90x70"):
        episode(read_image(paths["q1"]), [(paths["s1"], paths["s1_mask"])], 65)
    with pytest.raises(ValueError, match=r"s1.jpg is uint8 with shape \(70, 90, 3\); expected a single-channel"):
        episode(read_image(paths["q1"]), [(paths["s1"], paths["s1"])], 65)  # a colour image as a mask
