"""A compact checkpoint of only what trains (S vectors and the like)."""
import os
import tempfile

import torch

from .resolver import unwrap

FORMAT = "svf-trainable-1"


def trainable_state_dict(model):
    """{name: tensor} of every parameter with requires_grad, detached copies on the CPU."""
    model = unwrap(model)
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()
            if p.requires_grad}


def save_trainable(model, path):
    """Write trainable_state_dict(model) to `path` atomically (temp file + os.replace)."""
    path = os.fspath(path)
    payload = {"format": FORMAT, "params": trainable_state_dict(model)}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _first(keys, count=3):
    keys = sorted(keys)
    return ", ".join(keys[:count]) + (f" (+{len(keys) - count} more)" if len(keys) > count else "")


def load_trainable(model, path):
    """Copy a save_trainable file into `model`, whose trainable parameters must be exactly the
    saved ones (same names and shapes): apply the same svf.finetune call first."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such trainable-parameter checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # empty, truncated, foreign or code-carrying files
        reason = " ".join(str(error).split()) or "empty or truncated"
        raise ValueError(f"{path}: not a readable weights-only torch file "
                         f"({type(error).__name__}: {reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an svf.save_trainable file (expected format {FORMAT!r})")
    saved = payload["params"]
    model = unwrap(model)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    problems = []
    if params.keys() - saved.keys():
        problems.append(f"missing {_first(params.keys() - saved.keys())}")
    if saved.keys() - params.keys():
        problems.append(f"not trainable in the model {_first(saved.keys() - params.keys())}")
    shapes = [f"{k} {tuple(saved[k].shape)} vs {tuple(params[k].shape)}"
              for k in saved.keys() & params.keys() if saved[k].shape != params[k].shape]
    if shapes:
        problems.append(f"wrong shapes (file vs model) {_first(shapes)}")
    if problems:
        raise ValueError(f"{path}: does not match the model's trainable parameters ("
                         + "; ".join(problems) + "); apply the same svf.finetune call first")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])
    return model
