"""Training checkpoints: written atomically, read with weights_only=True (no code runs on load)."""
import os

import torch

from util.fileio import atomic_torch_save
from util.state_dict import load_strict


def save_checkpoint(path, model, optimizer=None, **meta):
    """model (unwrapped from DDP), optional optimizer and metadata (epoch, iteration...)."""
    state = {"model": model.state_dict(), **meta}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    atomic_torch_save(state, path)


def load_checkpoint(path, map_location="cpu"):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if isinstance(state, dict) and "state_dict" in state and "model" not in state:
        raise ValueError(f"{path}: a published PFENet / BAM / PSPNet checkpoint; convert it first: "
                         "python -m tools.convert --arch pfenet|bam|pspnet IN OUT (docs/models.md)")
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a checkpoint of this project (no 'model' entry)")
    return state


def load_model_weights(model, state, path):
    """Strict load of a checkpoint's model weights, with a one-line error naming the keys."""
    load_strict(model, state["model"], path, "this model (check arch, backbone, mode and shot)")
