"""Checkpoints: written atomically and only when every value is finite, read with
weights_only=True (no code runs on load).

    last.pth  kind "training": engine/model_state.training_state, the optimizer (and AMP scaler)
              state, the loop's counters and the digest of the frozen parameters
    best.pth  kind "inference": the model merged back to dense layers, without the parts it
              loads from files of their own (referenced by path and SHA-256)

Both carry `run` (the keys that define the model and its fold; test.py and resume compare them
with the config), `references` and the resolved `config`. Published checkpoints converted by
tools.convert are inference checkpoints holding every weight.
"""
from engine.model_state import non_finite
from util.config import COMMAND_LINE
from util.fileio import atomic_torch_save
from util.run_identity import FOLD_KEYS
from util.state_dict import first_keys, load_strict, torch_load

FORMAT = "fss-checkpoint-2"
TRAINING, INFERENCE = "training", "inference"


class DivergedError(ValueError):
    """Training produced non-finite or absurd values; nothing non-finite was written."""


def run_keys(cfg):
    """{key: value} of the keys that define the model and its fold."""
    return {k: getattr(cfg, k) for k in (*cfg.model_keys(), *FOLD_KEYS)}


def save_checkpoint(path, kind, model_state, cfg, **extra):
    """Write a checkpoint of `kind` (TRAINING / INFERENCE) atomically; refuse (DivergedError)
    when a model or optimizer value is not finite, leaving the previous file in place."""
    bad = non_finite(model_state)
    optimizer = extra.get("optimizer")
    if optimizer is not None:
        bad += [f"optimizer state {k}" for k, v in optimizer["state"].items()
                if non_finite({k: t for t in v.values()})]
    if bad:
        raise DivergedError(f"{path} not written: non-finite values in {first_keys(bad)}")
    atomic_torch_save({"format": FORMAT, "kind": kind, "model": model_state, "run": run_keys(cfg),
                       "config": cfg.to_dict(), **extra}, path)


def load_checkpoint(path):
    """Read a checkpoint (ours or converted); one line for a missing, foreign, published
    (unconverted) or non-finite file."""
    state = torch_load(path, "checkpoint")
    if isinstance(state, dict) and "state_dict" in state and "model" not in state:
        raise ValueError(f"{path}: a published checkpoint; convert it first: python -m tools.convert "
                         "--arch pfenet|bam|msanet|pspnet IN OUT (docs/models.md)")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"{path}: not a checkpoint of this project (no 'model' entry)")
    bad = non_finite(state["model"])
    if bad:
        raise ValueError(f"{path}: holds non-finite weights ({first_keys(bad)}); it cannot be used")
    state.setdefault("kind", INFERENCE)  # converted files hold every weight
    return state


def load_model_weights(model, state, path, loaded_prefixes=()):
    """Strict load of an inference checkpoint's weights; keys under `loaded_prefixes` were
    loaded from their own files already and may be absent."""
    load_strict(model, state["model"], path, "this model (check arch, backbone, mode and shot)",
                loaded_prefixes=loaded_prefixes)


def config_for_checkpoint(cfg, ckpt, path):
    """The config a checkpoint is used with: its fold must be the config's, and its model keys
    replace the config's unless the command line asked for another value (then one line)."""
    run = ckpt.get("run", {})
    for key in FOLD_KEYS:
        if key in run and run[key] != getattr(cfg, key):
            raise ValueError(f"{path}: trained with {key}={run[key]!r} but the config ({cfg.origin(key)}) "
                             f"has {key}={getattr(cfg, key)!r}; use that fold's checkpoint")
    known = {k: v for k, v in run.items() if k in cfg.model_keys()}
    for key in ("arch", "backbone"):  # converted published files name these two
        if key in ckpt and key not in known:
            known[key] = ckpt[key]
    changes = {}
    for key, value in known.items():
        if value != getattr(cfg, key):
            if cfg.origin(key) == COMMAND_LINE:
                raise ValueError(f"{path}: holds a model with {key}={value!r}; the command line asks "
                                 f"for {key}={getattr(cfg, key)!r}")
            changes[key] = value
    return cfg.replace(**changes) if changes else cfg


def check_same_run(cfg, ckpt, path):
    """A checkpoint a run resumes from must be that run's: every model and fold key equal."""
    if ckpt["kind"] != TRAINING:
        raise ValueError(f"{path}: holds no training state; resume from a last.pth")
    for key, value in ckpt.get("run", {}).items():
        if key in cfg and value != getattr(cfg, key):
            raise ValueError(f"{path}: belongs to a run with {key}={value!r}, not {getattr(cfg, key)!r} "
                             f"({cfg.origin(key)}); resume a checkpoint of this run")
