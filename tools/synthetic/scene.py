"""Synthetic scenes: textured, coloured shapes on a cluttered background, with label maps.

Class c always has the same shape, hue and texture (different classes differ in at least two
of the three), so a network can tell the classes apart. Scenes mix large objects (well above
the 2048-pixel rule) with small ones (below it), and VOC-style 255 bands on object outlines.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from util.seeding import sample_rng

_SPLIT_CODE = {"train": 0, "val": 1}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "hexagon", "chevron")
TEXTURES = ("solid", "stripes", "checker", "dots")


@dataclass
class SceneObject:
    """One painted object: class id, polygon (x, y) vertices in pixels, pixel area, crowd flag."""
    cls: int
    polygon: np.ndarray
    area: int
    crowd: bool = False


def class_look(cls, num_classes):
    """(shape, RGB colour uint8, texture) of a class; classes sharing a shape differ in hue."""
    num_shapes = 5 if num_classes <= 20 else len(SHAPES)
    shape = SHAPES[(cls - 1) % num_shapes]
    group = (cls - 1) // num_shapes
    texture = TEXTURES[group % len(TEXTURES)]
    hue = int(round((cls - 1) * 180 / num_classes)) % 180
    value = 230 if group % 2 == 0 else 170
    hsv = np.array([[[hue, 210, value]]], dtype=np.uint8)
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return shape, colour, texture


def _polar(count, offset=0.0, radii=None):
    t = np.linspace(0, 2 * np.pi, count, endpoint=False) + offset
    r = np.ones(count) if radii is None else np.asarray(radii, dtype=float)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


_A = 0.35  # arm half-width of the cross
_UNIT_SHAPES = {
    "circle": _polar(32),
    "square": _polar(4, np.pi / 4),
    "triangle": _polar(3, -np.pi / 2),
    "diamond": _polar(4, 0.0, [1.0, 0.7, 1.0, 0.7]),
    "cross": np.array([(-_A, -1), (_A, -1), (_A, -_A), (1, -_A), (1, _A), (_A, _A), (_A, 1),
                       (-_A, 1), (-_A, _A), (-1, _A), (-1, -_A), (-_A, -_A)], dtype=float),
    "star": _polar(10, -np.pi / 2, [1.0, 0.45] * 5),
    "hexagon": _polar(6),
    "chevron": np.array([(-1, -0.8), (0, -0.1), (1, -0.8), (1, -0.1), (0, 0.8), (-1, -0.1)], dtype=float),
}


def shape_polygon(shape, cx, cy, radius, angle):
    """Vertices (int32 [N, 2], x then y) of a shape of size `radius` centred at (cx, cy),
    rotated by `angle` radians."""
    if shape not in _UNIT_SHAPES:
        raise ValueError(f"shape {shape!r} is unknown; expected one of {SHAPES}")
    unit = _UNIT_SHAPES[shape]
    cos, sin = np.cos(angle), np.sin(angle)
    x = cx + radius * (unit[:, 0] * cos - unit[:, 1] * sin)
    y = cy + radius * (unit[:, 0] * sin + unit[:, 1] * cos)
    return np.stack([x, y], axis=1).round().astype(np.int32)


def _texture(texture, height, width, rng):
    yy, xx = np.mgrid[0:height, 0:width]
    period = int(rng.integers(6, 11))
    if texture == "stripes":
        return ((xx + yy) // (period // 2)) % 2 == 0
    if texture == "checker":
        return ((xx // period) + (yy // period)) % 2 == 0
    if texture == "dots":
        return ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < (period / 3.2) ** 2
    return np.zeros((height, width), dtype=bool)


def _background(rng, height, width):
    corners = rng.uniform(60, 200, size=(2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(2, 6))):  # clutter that belongs to no class
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        grey = float(rng.uniform(40, 220))
        cv2.line(image, p1, p2, (grey, grey, grey), int(rng.integers(1, 4)))
    return image


def _paint(image, label, mask, cls, num_classes, rng):
    _, colour, texture = class_look(cls, num_classes)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pattern = _texture(texture, y1 - y0, x1 - x0, rng)
    dark = colour.astype(np.float32) * 0.45
    patch = np.where(pattern[..., None], dark, colour.astype(np.float32))
    region = mask[y0:y1, x0:x1].astype(bool)
    image[y0:y1, x0:x1][region] = patch[region]
    label[y0:y1, x0:x1][region] = cls
    return int(region.sum())


def render_scene(rng, num_classes, height, width, main_class, max_objects=4, pure_p=0.4,
                 crowd_p=0.0, band=5):
    """Render one scene.

    Returns (image uint8 RGB [H, W, 3], label uint8 with 255 bands, label without bands,
    objects: list of SceneObject as painted, largest first so small objects stay visible).
    `main_class` gets a large object; with probability `pure_p` the other objects share its
    class, otherwise their classes are random; with probability `crowd_p` a crowd region is added.
    """
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.uint8)
    side = min(height, width)
    specs = [(main_class, rng.uniform(0.33, 0.5) * side)]
    pure = rng.random() < pure_p
    for _ in range(int(rng.integers(0, max_objects))):
        cls = main_class if pure else int(rng.integers(1, num_classes + 1))
        small = rng.random() < 0.5
        specs.append((cls, (rng.uniform(0.05, 0.1) if small else rng.uniform(0.14, 0.24)) * side))
    specs.sort(key=lambda s: -s[1])
    objects = []
    if rng.random() < crowd_p:  # painted first: any instance drawn later covers it
        cls = int(rng.integers(1, num_classes + 1))
        h, w = int(rng.integers(side // 6, side // 3)), int(rng.integers(side // 4, side // 2))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.int32)
        mask = np.zeros_like(label)
        mask[y:y + h, x:x + w] = 1
        objects.append(SceneObject(cls, box, _paint(image, label, mask, cls, num_classes, rng), True))
    for cls, radius in specs:
        shape, _, _ = class_look(cls, num_classes)
        cx = rng.uniform(min(radius * 0.8, width / 2), max(width - radius * 0.8, width / 2))
        cy = rng.uniform(min(radius * 0.8, height / 2), max(height - radius * 0.8, height / 2))
        polygon = shape_polygon(shape, cx, cy, radius, rng.uniform(0, 2 * np.pi))
        mask = np.zeros_like(label)
        cv2.fillPoly(mask, [polygon], 1)
        area = _paint(image, label, mask, cls, num_classes, rng)
        if area:
            objects.append(SceneObject(cls, polygon, area))
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    kernel = np.ones((band, band), np.uint8)
    edges = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
    banded = label.copy()
    banded[edges] = 255
    return image, banded, label, objects


def scene(seed, split, k, num_classes, min_size, max_size, crowd_p=0.0):
    """Scene k of a split (see render_scene): its own RNG, random size, main class k mod C + 1."""
    rng = sample_rng(seed, _SPLIT_CODE[split], k)
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    return render_scene(rng, num_classes, height, width, main_class=k % num_classes + 1, crowd_p=crowd_p)
