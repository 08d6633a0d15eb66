"""Model weights from our checkpoints or from the published PFENet / BAM / BAM-PSPNet files.

Our checkpoints (engine/checkpoint.py) are dicts {"model": state_dict, ...} in our key names.
Published ones are {"state_dict": ...} (plus epoch / optimizer) in upstream names, usually with
the `module.` prefix of (Distributed)DataParallel. `read_weights` tells the two apart, strips
the prefix and converts upstream names through model/keymap.py; loading is always strict.
"""
import os

import torch

from model.keymap import convert_state_dict, stage_children
from util.state_dict import load_strict, strip_module_prefix, torch_load

OURS, UPSTREAM = "ours", "upstream"


def _unwrap(data, path):
    """(state dict, format) of a loaded file."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        state, fmt = data["model"], OURS
    elif isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        state, fmt = data["state_dict"], UPSTREAM
    elif isinstance(data, dict) and data and all(torch.is_tensor(v) for v in data.values()):
        state, fmt = data, None  # a bare state dict: decided by its key names below
    else:
        raise ValueError(f"{path}: expected a checkpoint with a 'model' or 'state_dict' entry, "
                         f"or a bare state dict; got {type(data).__name__}")
    state = strip_module_prefix(state)
    if fmt is None:
        fmt = OURS if any(k.startswith("backbone.") for k in state) else UPSTREAM
    return state, fmt


def read_weights(path, arch, backbone):
    """The state dict of `path` in our key names for an `arch` model over `backbone` (whose
    stage layout names the upstream backbone keys), and the format it was found in ("ours" or
    "upstream")."""
    path = os.fspath(path)
    data = torch_load(path, "weight file")
    state, fmt = _unwrap(data, path)
    if fmt == UPSTREAM:
        state = convert_state_dict(arch, state, stage_children(backbone), source=path)
    return state, fmt


def load_weights(model, path, arch):
    """Strictly load `path` (ours or published, see the module doc) into `model`; returns the
    format found. Mismatching keys or shapes raise one ValueError naming the file."""
    state, fmt = read_weights(path, arch, model.backbone)
    load_strict(model, state, os.fspath(path), f"this {arch} model")
    return fmt
