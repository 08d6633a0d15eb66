"""Reading a COCO instances JSON for tools.prepare_coco, every field checked: a broken file
is one line naming it and the entry at fault, never a traceback or a wrong label."""
import json
import numbers
import os


def _fail(path, what):
    raise ValueError(f"{path}: {what}")


def _is_count(value, minimum=0):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _check_segmentation(path, ann):
    seg = ann.get("segmentation")
    where = f"annotation {ann.get('id')}"
    if isinstance(seg, list):
        if not seg:
            _fail(path, f"{where} has an empty polygon list")
        for polygon in seg:
            if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                    or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in polygon)):
                _fail(path, f"{where}: a polygon must list at least 3 x, y pairs of numbers; got "
                            f"{str(polygon)[:60]}")
    elif isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v, 1) for v in size)):
            _fail(path, f"{where}: RLE 'size' must be [height, width]; got {size!r}")
        if not isinstance(counts, (list, str)):
            _fail(path, f"{where}: RLE 'counts' must be a list or a string")
    else:
        _fail(path, f"{where}: 'segmentation' must be a polygon list or an RLE mapping")


def _entries(path, doc, key, fields):
    entries = doc.get(key)
    if not isinstance(entries, list):
        _fail(path, f"expected a list under {key!r}, as COCO's instances files have")
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            _fail(path, f"{key}[{n}] is not a mapping")
        missing = [f for f in fields if f not in entry]
        if missing:
            _fail(path, f"{key}[{n}] (id {entry.get('id')}) has no {', '.join(missing)}")
    return entries


def read_instances(path):
    """(category ids ascending, images, annotations) of a COCO instances JSON, checked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            doc = json.load(handle)
    except UnicodeDecodeError:
        _fail(path, "not UTF-8 text")
    except json.JSONDecodeError as e:
        _fail(path, f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})")
    if not isinstance(doc, dict):
        _fail(path, f"expected a JSON object with images, annotations and categories; got a {type(doc).__name__}")
    categories = _entries(path, doc, "categories", ("id",))
    images = _entries(path, doc, "images", ("id", "file_name", "height", "width"))
    annotations = _entries(path, doc, "annotations", ("image_id", "category_id", "segmentation", "area"))
    category_ids = sorted(c["id"] for c in categories)
    if not all(_is_count(c, 1) for c in category_ids) or len(set(category_ids)) != len(category_ids):
        _fail(path, "category ids must be distinct positive integers")
    if len(category_ids) > 254:
        _fail(path, f"{len(category_ids)} categories; labels hold at most 254")
    for image in images:
        if not (_is_count(image["height"], 1) and _is_count(image["width"], 1)):
            _fail(path, f"image {image['id']} has height {image['height']!r} and width {image['width']!r}; "
                        "expected positive integers")
    known_images, known_categories = {im["id"] for im in images}, set(category_ids)
    for ann in annotations:
        if ann["category_id"] not in known_categories:
            _fail(path, f"annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
        if ann["image_id"] not in known_images:
            _fail(path, f"annotation {ann.get('id')} refers to image {ann['image_id']}, which is not listed")
        if not isinstance(ann["area"], numbers.Real) or isinstance(ann["area"], bool):
            _fail(path, f"annotation {ann.get('id')} has area {ann['area']!r}; expected a number")
        _check_segmentation(path, ann)
    return category_ids, images, annotations
