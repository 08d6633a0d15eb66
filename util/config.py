"""YAML configuration with `_base_` inheritance, sections and bare-name command-line overrides.

Every key, its default and its documentation live in config/defaults.yaml; a key's type is the
type of its default. A config file may name a `_base_` file (relative to itself) whose values it
overrides; config/defaults.yaml is the implicit root of every chain. Top-level mappings whose
name is not a key (DATA:, TRAIN:, ...) are sections and only group keys for reading.

The keys that pick from a registry (arch, backbone, mode, ...) are checked against `choices`,
which the caller passes: this module knows no registry. engine/choices.py collects them.

    cfg = load_config("config/pascal_split0.yaml", ["shot=5", "base_lr=0.01"], choices=CHOICES)
    cfg.shot, cfg.exp_path
"""
import difflib
import os

import yaml

from util.fileio import REPO_ROOT, atomic_write_text

DEFAULTS_FILE = os.path.join(REPO_ROOT, "config", "defaults.yaml")
POSITIVE = ("shot", "train_size", "val_size", "epochs", "batch_size", "base_lr", "test_num",
            "batch_size_val", "val_every", "print_freq", "reduce_dim")
NON_NEGATIVE = ("train_num", "workers", "index_workers", "warmup_iters", "weight_decay", "momentum",
                "stop_interval", "poly_power", "rotation_seed")
# The fine-tuning modes that act on no convolution, so take neither ft_kernels nor ft_bn.
# svf.finetune enforces the same rule; it is restated here so that a wrong combination stops
# before any model is built.
NO_CONV_MODES = ("freeze", "full", "bn", "bn_weight", "bn_bias")


class ConfigError(ValueError):
    """A configuration problem, reported in one line that names the file and the key."""


class Config:
    """Flat, attribute-style view of the resolved keys (cfg.shot). `source` is the file."""

    def __init__(self, values, source, choices):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "_choices", choices)

    def __getattr__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key, value):
        raise AttributeError("Config is read-only; use cfg.replace(key=value)")

    def __contains__(self, key):
        return key in self._values

    def replace(self, **changes):
        """A validated copy with some keys changed."""
        values = dict(self._values)
        for key, value in changes.items():
            values[key] = _check_value(key, value, _defaults().get(key), f"replace({key}=...)",
                                       self._choices)
        return Config(_validate(values, self.source), self.source, self._choices)

    def to_dict(self):
        return dict(self._values)

    @property
    def exp_name_or_dataset(self):
        return self.exp_name or self.dataset

    def fill(self, key):
        """The path template in `key` with {dataset} (exp_name or dataset), {split},
        {backbone}, {arch} and {shot} filled in."""
        try:
            return getattr(self, key).format(dataset=self.exp_name_or_dataset, split=self.split,
                                             backbone=self.backbone, arch=self.arch, shot=self.shot)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"key {key!r} = {getattr(self, key)!r}: bad placeholder ({e}); "
                              "use {dataset} {split} {backbone} {arch} {shot}") from None

    @property
    def exp_path(self):
        """exp_dir/<exp_name>/<arch>/split<k>/<backbone>/<mode>/<shot>shot"""
        return os.path.join(self.exp_dir, self.exp_name_or_dataset, self.arch, f"split{self.split}",
                            self.backbone, self.mode, f"{self.shot}shot")

    def __repr__(self):
        return "\n".join(f"{k}: {v!r}" for k, v in sorted(self._values.items()))


_DEFAULTS_CACHE = {}


def _defaults():
    if "values" not in _DEFAULTS_CACHE:
        _DEFAULTS_CACHE["values"] = _flatten(_read_yaml(DEFAULTS_FILE), DEFAULTS_FILE, known=None)
    return _DEFAULTS_CACHE["values"]


def _read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def read_yaml(path):
    """The top-level mapping of a YAML file ({} when empty), with one-line errors naming it."""
    return _read_yaml(path)


def _flatten(data, path, known):
    """Merge sections into one flat dict; `known` is the set of key names (None: defaults file)."""
    flat = {}
    for key, value in data.items():
        is_section = isinstance(value, dict) and (known is None or key not in known)
        items = value.items() if is_section else [(key, value)]
        for k, v in items:
            if isinstance(v, dict):
                raise ConfigError(f"{path}: key {k!r} holds a mapping; sections cannot be nested")
            if k in flat:
                raise ConfigError(f"{path}: key {k!r} is set twice")
            flat[k] = v
    return flat


def _unknown_key(key, where):
    close = difflib.get_close_matches(key, _defaults().keys(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else " (see config/defaults.yaml)"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _type_name(value):
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(value), type(value).__name__)


def _check_type(key, value, default, where, choices):
    """Coerce `value` to the type of `default`, or raise a one-line ConfigError."""
    bad = ConfigError(f"{where}: key {key!r} expects {_type_name(default)}, got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif isinstance(default, str):
        if value is None:
            value = ""
        if value is False and "off" in choices.get(key, ()):
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if not isinstance(value, str):
            raise bad
    elif isinstance(default, list):
        if default and not isinstance(value, list) and not isinstance(default[0], list):
            value = [value]  # `ft_layers=layer4` means [layer4]
        if not isinstance(value, list):
            raise bad
        if default:
            value = [_check_type(key, v, default[0], where, {}) for v in value]
    return value


def _check_value(key, value, default, where, choices):
    """Type check (see _check_type) plus the key's allowed choices (for a list key: of each
    element, and the list must not be empty)."""
    if default is None:
        raise _unknown_key(key, where)
    value = _check_type(key, value, default, where, choices)
    if key not in choices:
        return value
    allowed = choices[key]
    if isinstance(default, list):
        if not value or any(v not in allowed for v in value):
            raise ConfigError(f"{where}: key {key!r} takes a non-empty list from "
                              f"{', '.join(allowed)}; got {value!r}")
    elif value not in allowed:
        raise ConfigError(f"{where}: key {key!r} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _load_chain(path, seen, choices):
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: _base_ chain loops back to this file")
    data = _read_yaml(path)
    base = data.pop("_base_", None)
    values = {}
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: _base_ must be a file path")
        values = _load_chain(os.path.join(os.path.dirname(path), base), seen | {path}, choices)
    defaults = _defaults()
    for key, value in _flatten(data, path, known=set(defaults)).items():
        values[key] = _check_value(key, value, defaults.get(key), path, choices)
    return values


def parse_override(text):
    """'key=value' -> (key, value), the value read as YAML ('5' -> 5, '[1,2]' -> [1, 2])."""
    if "=" not in text or text.startswith("="):
        raise ConfigError(f"command line: {text!r} is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if isinstance(_defaults().get(key), str):
        return key, raw.strip()  # string keys take the text verbatim (no YAML `off` -> false)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _validate(values, where):
    """Checks that involve one key's range or several keys together."""
    for key in POSITIVE:
        if values[key] <= 0:
            raise ConfigError(f"{where}: key {key!r} must be positive; got {values[key]!r}")
    for key in NON_NEGATIVE:
        if values[key] < 0:
            raise ConfigError(f"{where}: key {key!r} must not be negative; got {values[key]!r}")
    if values["split"] not in (0, 1, 2, 3):
        raise ConfigError(f"{where}: key 'split' must be 0, 1, 2 or 3; got {values['split']!r}")
    lo_hi = values["train_scale"]
    if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
        raise ConfigError(f"{where}: key 'train_scale' must be [low, high] with 0 < low <= high; got {lo_hi!r}")
    if not 0 < values["svf_rank_ratio"] <= 1:
        raise ConfigError(f"{where}: key 'svf_rank_ratio' must be in (0, 1]; got {values['svf_rank_ratio']!r}")
    _check_finetune_keys(values, where)
    if not values["test_seeds"]:
        raise ConfigError(f"{where}: key 'test_seeds' must list at least one seed")
    if values["device"] == "cpu" and values["amp"] != "off":
        raise ConfigError(f"{where}: amp={values['amp']} needs device cuda (or auto on a CUDA machine); "
                          "use amp=off on the CPU")
    if values["arch"] == "pspnet" and values["shot"] != 1:
        raise ConfigError(f"{where}: arch pspnet (the base learner) uses no support images; shot must be 1")
    return values


def _check_finetune_keys(values, where):
    """The combinations of mode, ft_kernels, ft_bn, svf_factors and svf_param that svf.finetune
    refuses (docs/svf.md, Fine-tuning modes)."""
    mode, kernels = values["mode"], values["ft_kernels"]
    if kernels != "all" and mode in NO_CONV_MODES:
        raise ConfigError(f"{where}: key 'ft_kernels' = {kernels} selects convolutions, but mode "
                          f"{mode} acts on none; use ft_kernels=all")
    if values["ft_bn"] and mode == "freeze":
        raise ConfigError(f"{where}: key 'ft_bn' with mode freeze is mode bn; use mode=bn")
    if values["ft_bn"] and (mode in NO_CONV_MODES or (mode == "partial" and kernels == "all")):
        raise ConfigError(f"{where}: key 'ft_bn': mode {mode} with ft_kernels={kernels} already "
                          "trains BatchNorm; use ft_bn=false")
    if values["svf_param"] != "direct" and "S" not in values["svf_factors"]:
        raise ConfigError(f"{where}: key 'svf_param' = {values['svf_param']} reparametrises S, but "
                          f"svf_factors {values['svf_factors']} does not include S")


def load_config(path, overrides=(), *, choices):
    """Resolve `path` (with its _base_ chain and defaults) plus 'key=value' overrides.

    choices: {key: allowed values} for the keys that pick from a registry."""
    values = dict(_defaults())
    values.update(_load_chain(path, frozenset(), choices))
    for text in overrides:
        key, value = parse_override(text)
        values[key] = _check_value(key, value, _defaults().get(key), "command line", choices)
    return Config(_validate(values, path), path, choices)


def save_config(cfg, path):
    """Write the resolved keys as YAML (atomically), for the record next to the results."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=True))
