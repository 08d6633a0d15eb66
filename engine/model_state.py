"""What a checkpoint holds of a model, so that files stay lean and never hold stale copies:

- training state (last.pth): the parameters that train, every buffer (outside the referenced
  parts), and a digest of the frozen parameters; resuming rebuilds the model as the run built it (same seed, same weight
  files) and checks the digest before loading the rest, so it is exact;
- inference state (best.pth): the model merged back to dense layers (svf.merge), without the
  parts the model loads from files of their own (BAM's base learner: `model.referenced_parts`),
  which the checkpoint references by path and SHA-256 instead.
"""
import copy
import hashlib
import os

import torch

import svf
from model.backbone import fill_path, pretrained_path
from util.state_dict import first_keys

_CHUNK = 1 << 20


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def frozen_digest(model):
    """SHA-256 over the names, shapes and values of every parameter that does not train."""
    digest = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if not p.requires_grad:
            digest.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def training_state(model):
    """{name: tensor}: the parameters that train and every buffer (BatchNorm statistics),
    outside the referenced parts."""
    params, skip = dict(model.named_parameters()), tuple(model.referenced_parts)
    return {n: t.detach().clone() for n, t in model.state_dict().items()
            if (n not in params or params[n].requires_grad) and not n.startswith(skip)}


def load_training_state(model, state, source):
    """Load a training_state into a model built the way the run built it (strict on its keys)."""
    expected = training_state(model)
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    shapes = [k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} {first_keys(keys)}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
        raise ValueError(f"{source}: its trainable state does not fit this model ({'; '.join(parts)})")
    model.load_state_dict(state, strict=False)


def inference_state(model):
    """The dense (merged) state dict without the referenced parts."""
    dense = svf.merge(copy.deepcopy(model))
    skip = tuple(model.referenced_parts)
    return {n: t for n, t in dense.state_dict().items() if not n.startswith(skip)}


def weight_references(cfg, model, training):
    """{config key: {"path", "sha256"}} of the weight files the model was built from: the
    referenced parts' files (always) and, for training state, the pretrained backbone."""
    paths = {key: fill_path(cfg, key) for key in model.referenced_parts.values()}
    pretrained = pretrained_path(cfg)
    if training and pretrained:
        paths["pretrained"] = pretrained
    return {key: {"path": path, "sha256": file_sha256(path)} for key, path in paths.items()}


def check_references(refs, source):
    """Every referenced file is still there with the same content, or one line saying which."""
    for key, ref in refs.items():
        if not os.path.isfile(ref["path"]):
            raise FileNotFoundError(f"{source}: needs {ref['path']} ({key}), which is gone")
        if file_sha256(ref["path"]) != ref["sha256"]:
            raise ValueError(f"{source}: {ref['path']} ({key}) changed since the checkpoint was "
                             "written (SHA-256 differs); restore the file the run used")


def non_finite(tensors):
    """Names of the floating tensors of a {name: tensor} dict that hold NaN or infinity."""
    return [n for n, t in tensors.items()
            if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]


def restore_training_state(model, ckpt, path):
    """Load a training checkpoint into a model built the way its run built it: the referenced
    files and the frozen parameters must be the run's (one line otherwise)."""
    check_references(ckpt.get("references", {}), path)
    if ckpt.get("frozen_digest") != frozen_digest(model):
        raise ValueError(f"{path}: the frozen weights built here differ from the run's (another "
                         "pretrained file, seed or SVD library?); use it on the setup that wrote it")
    load_training_state(model, ckpt["model"], path)
