"""What the two dataset preparations (tools.prepare_pascal, tools.prepare_coco) share: their
output arguments."""
import os

from util.cli import command_parser
from util.fileio import REPO_ROOT


def prepare_parser(module, doc, dataset):
    """The command's parser with --list-dir (default lists/<dataset>) and --workers."""
    parser = command_parser(module, doc)
    parser.add_argument("--list-dir", default=os.path.join(REPO_ROOT, "lists", dataset),
                        help=f"where the list files go (default lists/{dataset})")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    return parser
