"""What the two dataset preparations (tools.prepare_pascal, tools.prepare_coco) share: their
output arguments, and the record of the options that wrote a folder of labels.

A label folder holds `.prepare.json`, the options that change the labels' content. A later run
with the same options skips the labels already written; one with other options stops with one
line, unless --overwrite, which deletes those labels and writes them anew. A folder of labels
without a record (the community's SegmentationClassAug, say) is used as it is."""
import json
import os

from util.cli import command_parser
from util.fileio import REPO_ROOT, atomic_write_json

RECORD = ".prepare.json"


def prepare_parser(module, doc, dataset):
    """The command's parser with --list-dir (default lists/<dataset>), --workers, --overwrite."""
    parser = command_parser(module, doc)
    parser.add_argument("--list-dir", default=os.path.join(REPO_ROOT, "lists", dataset),
                        help=f"where the list files go (default lists/{dataset})")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rewrite labels that earlier runs wrote with other options")
    return parser


def recorded_options(folder):
    """The options recorded in `folder` (None when there is no record)."""
    path = os.path.join(folder, RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        raise ValueError(f"{path}: unreadable record of the options that wrote these labels; "
                         "delete it and rerun with --overwrite") from None


def claim_label_folder(folder, options, outputs, overwrite, flag_text):
    """Check `options` against the folder's record before writing labels; with --overwrite
    and other options, delete `outputs` (the label files this run writes) first."""
    recorded = recorded_options(folder)
    if recorded is None or recorded == options:
        return
    differs = ", ".join(f"{k}: {recorded.get(k)!r} -> {v!r}" for k, v in options.items() if recorded.get(k) != v)
    if not overwrite:
        raise ValueError(f"{folder} holds labels written with other options ({differs}; "
                         f"this run: {flag_text}); add --overwrite to rewrite them")
    for path in outputs:
        if os.path.isfile(path):
            os.unlink(path)
    os.unlink(os.path.join(folder, RECORD))


def record_options(folder, options):
    atomic_write_json(os.path.join(folder, RECORD), options, indent=1)
