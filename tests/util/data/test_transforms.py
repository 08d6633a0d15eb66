"""Every transform step of docs/protocol.md (Transforms), tested on its own."""
import cv2
import numpy as np
import pytest
import torch

from util.data.transforms import (MEAN, STD, TrainAugment, normalise_to_tensor, pad_to, random_blur,
                             random_crop, random_hflip, random_rotate, random_scale,
                             top_left_canvas, val_hw, val_resize)


class ScriptedRng:
    """Stands in for numpy's Generator: returns scripted values, records the calls."""

    def __init__(self, randoms=(), integers=()):
        self.randoms, self.integers_ = list(randoms), list(integers)
        self.integer_calls = []

    def random(self):
        return self.randoms.pop(0)

    def integers(self, low, high):
        self.integer_calls.append((low, high))
        return self.integers_.pop(0) if self.integers_ else low


def _image(h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (h, w, 3)).astype(np.float32)


def _label(h, w, seed=0):
    return np.random.default_rng(seed).choice(np.array([0, 3, 7, 255], np.uint8), (h, w))


def test_scale_factor_interpolation_and_range():
    image, label = _image(100, 80), _label(100, 80)
    out_img, out_lbl = random_scale(image, label, ScriptedRng([0.5]), (0.9, 1.1))  # factor 1.0
    np.testing.assert_array_equal(out_lbl, label)
    out_img, out_lbl = random_scale(image, label, ScriptedRng([1.0]), (0.5, 2.0))  # factor 2.0
    assert out_img.shape == (200, 160, 3) and out_lbl.shape == (200, 160)
    np.testing.assert_array_equal(out_lbl, cv2.resize(label, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_NEAREST))
    np.testing.assert_allclose(out_img, cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR))
    assert set(np.unique(out_lbl)) <= {0, 3, 7, 255}  # nearest: no new label values
    rng = np.random.default_rng(0)
    for _ in range(20):
        h = random_scale(image, label, rng, (0.8, 1.25))[1].shape[0]
        assert 80 <= h <= 125


def test_rotate_probability_angle_and_borders():
    image, label = np.full((60, 80, 3), 7.0, np.float32), np.full((60, 80), 3, np.uint8)
    same = random_rotate(image, label, ScriptedRng([0.5]), (-10, 10), 0.5)  # 0.5 >= p: skipped
    assert same[0] is image and same[1] is label
    rot_img, rot_lbl = random_rotate(image, label, ScriptedRng([0.1, 1.0]), (-10, 10), 0.5)  # +10 deg
    assert rot_lbl.shape == (60, 80)
    assert rot_lbl[0, 0] == 255 and rot_lbl[30, 40] == 3  # corners leave, the centre stays
    np.testing.assert_allclose(rot_img[0, 0], MEAN, rtol=1e-5)  # image border is the mean colour
    matrix = cv2.getRotationMatrix2D((40.0, 30.0), 10.0, 1)
    expected = cv2.warpAffine(label, matrix, (80, 60), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    np.testing.assert_array_equal(rot_lbl, expected)


def test_blur_is_a_5x5_gaussian_with_probability():
    image = _image(40, 50)
    assert random_blur(image, ScriptedRng([0.7]), 0.5) is image
    np.testing.assert_allclose(random_blur(image, ScriptedRng([0.2]), 0.5),
                               cv2.GaussianBlur(image, (5, 5), 0))


def test_horizontal_flip():
    image, label = _image(10, 12), _label(10, 12)
    out_img, out_lbl = random_hflip(image, label, ScriptedRng([0.3]), 0.5)
    np.testing.assert_array_equal(out_lbl, label[:, ::-1])
    np.testing.assert_array_equal(out_img, image[:, ::-1])
    assert random_hflip(image, label, ScriptedRng([0.6]), 0.5)[1] is label


def test_pad_is_centred_with_mean_and_255():
    image, label = np.zeros((5, 8, 3), np.float32), np.zeros((5, 8), np.uint8)
    pad_img, pad_lbl = pad_to(image, label, 10)
    assert pad_lbl.shape == (10, 10)
    # 5 rows missing: 2 on top, 3 below; 2 columns missing: 1 left, 1 right
    assert (pad_lbl[:2] == 255).all() and (pad_lbl[7:] == 255).all() and (pad_lbl[2:7, 1:9] == 0).all()
    assert (pad_lbl[2:7, 0] == 255).all() and (pad_lbl[2:7, 9] == 255).all()
    np.testing.assert_allclose(pad_img[0, 0], MEAN, rtol=1e-5)
    assert (pad_img[2:7, 1:9] == 0).all()


def test_crop_offsets_are_uniform_inclusive():
    image, label = _image(30, 40), _label(30, 40)
    rng = ScriptedRng(integers=[5, 9])
    out_img, out_lbl = random_crop(image, label, rng, 20)
    assert rng.integer_calls == [(0, 11), (0, 21)]  # offsets 0..10 and 0..20 inclusive
    np.testing.assert_array_equal(out_lbl, label[5:25, 9:29])
    np.testing.assert_array_equal(out_img, image[5:25, 9:29])


def test_crop_retries_until_85_percent_of_the_target_survives():
    label = np.zeros((100, 100), np.uint8)
    label[:20, :20] = 5  # the target sits in the top-left corner
    image = _image(100, 100)
    # first draw misses the target, second keeps 80% (too few), third keeps it all
    rng = ScriptedRng(integers=[50, 50, 4, 0, 0, 0])
    _, out = random_crop(image, label, rng, 50, target=5)
    assert len(rng.integer_calls) == 6 and (out == 5).sum() == 400
    # without a target (base learner) the first draw is kept
    rng = ScriptedRng(integers=[50, 50])
    _, out = random_crop(image, label, rng, 50)
    assert len(rng.integer_calls) == 2 and (out == 5).sum() == 0


def test_crop_gives_up_after_31_more_draws_like_pfenet():
    label = np.zeros((100, 100), np.uint8)
    label[:20, :20] = 5
    rng = ScriptedRng(integers=[50] * 200)  # always misses
    _, out = random_crop(_image(100, 100), label, rng, 50, target=5)
    assert len(rng.integer_calls) == 2 * 32 and (out == 5).sum() == 0


def test_train_pipeline_output_and_label_remap_commutes():
    """Transforming the raw label and then binarising equals binarising first (nearest / 255)."""
    image, label = _image(90, 120), _label(90, 120)
    augment = TrainAugment(crop_size=64, scale_range=(0.7, 1.3), rotate_p=1.0, blur_p=1.0, flip_p=1.0)
    binary = np.where(label == 255, 255, (label == 3).astype(np.uint8)).astype(np.uint8)
    img_a, raw_out = augment(image, label, np.random.default_rng(4), target=3)
    img_b, bin_out = augment(image, binary, np.random.default_rng(4), target=1)
    assert img_a.shape == (64, 64, 3) and img_a.dtype == np.float32 and raw_out.dtype == np.uint8
    np.testing.assert_array_equal(img_a, img_b)
    lut = np.zeros(256, np.uint8)
    lut[3], lut[255] = 1, 255
    np.testing.assert_array_equal(lut[raw_out], bin_out)


@pytest.mark.parametrize("h, w, size, expected", [
    (375, 500, 473, (352, 472)),   # 473 -> 472, 354.75 -> 354 -> 352
    (500, 375, 473, (472, 352)),
    (473, 473, 473, (472, 472)),
    (100, 60, 473, (472, 280)),    # small images are enlarged: 283.8 -> 283 -> 280
    (480, 640, 641, (480, 640)),   # 641 -> 640, 480.75 -> 480
])
def test_val_size_is_a_multiple_of_8(h, w, size, expected):
    assert val_hw(h, w, size) == expected
    assert all(v % 8 == 0 for v in val_hw(h, w, size))


def test_small_images_are_resized_up():
    assert val_hw(100, 60, 473) == (472, 280)  # the references' resized_val: true


def test_val_resize_places_top_left_with_0_and_255():
    image, label = np.full((375, 500, 3), 100.0, np.float32), np.full((375, 500), 7, np.uint8)
    out_img, out_lbl = val_resize(image, label, 473)
    assert out_img.shape == (473, 473, 3) and out_lbl.shape == (473, 473)
    assert (out_lbl[:352, :472] == 7).all()
    assert (out_lbl[352:] == 255).all() and (out_lbl[:, 472:] == 255).all()
    assert (out_img[:352, :472] == 100).all() and (out_img[352:] == 0).all() and (out_img[:, 472:] == 0).all()


def test_normalisation_and_canvas():
    image = np.zeros((2, 3, 3), np.float32)
    image[..., 0], image[..., 1], image[..., 2] = MEAN[0], MEAN[1] + STD[1], 0
    tensor = normalise_to_tensor(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[0], torch.zeros(2, 3), atol=1e-6)
    assert torch.allclose(tensor[1], torch.ones(2, 3), atol=1e-6)
    assert torch.allclose(tensor[2], torch.full((2, 3), -MEAN[2] / STD[2]), atol=1e-6)
    canvas = top_left_canvas(np.array([[1, 0, 1]], np.uint8))
    assert canvas.tolist() == [[1, 0, 1], [255, 255, 255], [255, 255, 255]]
