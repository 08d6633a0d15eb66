"""Small synthetic datasets in the real on-disk formats, for the demo, the tests and the
benchmarks (`python -m tools.synthetic`, see __main__.py).

    write_voc(out, ...)      ready-to-train VOC layout (SegmentationClassAug + lists)
    write_voc_raw(out, ...)  raw VOC2012 + SBD trees, the input of tools.prepare_pascal
    write_coco(out, ...)     COCO 2014 images and instances JSON, the input of tools.prepare_coco

Scenes (scene.py): textured, coloured shapes whose look depends on their class.
"""
from .coco import COCO_CATEGORY_IDS, write_coco
from .voc import write_voc
from .voc_raw import write_voc_raw

__all__ = ["write_voc", "write_voc_raw", "write_coco", "COCO_CATEGORY_IDS"]
