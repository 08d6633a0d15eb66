"""YAML configuration with `_base_` inheritance, sections and bare-name command-line overrides.

Every key, its default and its documentation live in config/defaults.yaml; a key's type is the
type of its default. A config file may name a `_base_` file (relative to itself) whose values it
overrides; config/defaults.yaml is the implicit root of every chain. Top-level mappings whose
name is not a key (DATA:, TRAIN:, ...) are sections and only group keys for reading. A key
given twice in one mapping is an error. The config remembers where each value came from, so a
bad value is reported against its file or the command line.

The keys that pick from a registry (arch, backbone, mode, ...) are checked against `choices`,
which the caller passes: this module knows no registry. engine/choices.py collects them.

    cfg = load_config("config/pascal_split0.yaml", ["shot=5", "base_lr=0.01"], choices=CHOICES)
    cfg.shot, cfg.exp_path
"""
import os

import yaml

from util.config_values import ConfigError, check_value, unknown_key, validate
from util.fileio import REPO_ROOT, atomic_write_text
from util.run_identity import model_keys, run_tag

DEFAULTS_FILE = os.path.join(REPO_ROOT, "config", "defaults.yaml")
COMMAND_LINE = "command line"

__all__ = ["Config", "ConfigError", "load_config", "save_config", "parse_override", "DEFAULTS_FILE"]


class Config:
    """Flat, attribute-style view of the resolved keys (cfg.shot). `source` is the file;
    `origin(key)` says where a key's value came from (a file, or "command line")."""

    def __init__(self, values, origins, source, choices):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_origins", dict(origins))
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

    def origin(self, key):
        return self._origins[key]

    def replace(self, **changes):
        """A validated copy with some keys changed."""
        values, origins = dict(self._values), dict(self._origins)
        for key, value in changes.items():
            where = f"replace({key}=...)"
            values[key] = _checked(key, value, where, self._choices)
            origins[key] = where
        return Config(validate(values, origins), origins, self.source, self._choices)

    def to_dict(self):
        return dict(self._values)

    @property
    def exp_name_or_dataset(self):
        return self.exp_name or self.dataset

    def fill(self, key, **extra):
        """The path template in `key` with {dataset} (exp_name or dataset), {split}, {backbone},
        {arch}, {shot} and the `extra` placeholders (e.g. backbone_folder) filled in."""
        fields = dict(dataset=self.exp_name_or_dataset, split=self.split, backbone=self.backbone,
                      arch=self.arch, shot=self.shot, **extra)
        try:
            return getattr(self, key).format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"{self.origin(key)}: key {key!r} = {getattr(self, key)!r}: bad "
                              f"placeholder ({e}); use {' '.join('{' + f + '}' for f in fields)}") from None

    @property
    def exp_path(self):
        """exp_dir/<exp_name>/<arch>/split<k>/<backbone>/<mode>/<shot>shot/<run tag>; the tag
        tells apart runs whose other training keys differ (util/run_identity.py)."""
        return os.path.join(self.exp_dir, self.exp_name_or_dataset, self.arch, f"split{self.split}",
                            self.backbone, self.mode, f"{self.shot}shot", run_tag(self._values, _defaults()))

    @staticmethod
    def model_keys():
        """The keys that define the model a checkpoint holds (MODEL and ARCH sections)."""
        return model_keys(_sections())

    def __repr__(self):
        return "\n".join(f"{k}: {v!r}" for k, v in sorted(self._values.items()))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # a SafeLoader: no objects are built
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML ({problem})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _flatten(data, path, known):
    """Merge sections into one flat dict; `known` is the set of key names (None: the defaults
    file, whose sections are remembered in _sections)."""
    flat, sections = {}, {}
    for key, value in data.items():
        is_section = isinstance(value, dict) and (known is None or key not in known)
        items = value.items() if is_section else [(key, value)]
        for k, v in items:
            if isinstance(v, dict):
                raise ConfigError(f"{path}: key {k!r} holds a mapping; sections cannot be nested")
            if k in flat:
                raise ConfigError(f"{path}: key {k!r} is set twice")
            flat[k] = v
            sections[k] = key if is_section else None
    return flat, sections


_DEFAULTS_CACHE = {}


def _load_defaults():
    if "values" not in _DEFAULTS_CACHE:
        _DEFAULTS_CACHE["values"], _DEFAULTS_CACHE["sections"] = _flatten(
            read_yaml(DEFAULTS_FILE), DEFAULTS_FILE, known=None)
    return _DEFAULTS_CACHE


def _defaults():
    return _load_defaults()["values"]


def _sections():
    return _load_defaults()["sections"]


def _checked(key, value, where, choices):
    default = _defaults().get(key)
    if default is None:
        raise unknown_key(key, where, _defaults().keys())
    return check_value(key, value, default, where, choices)


def _load_chain(path, seen, choices):
    """(values, origins) of a file and its _base_ chain."""
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: _base_ chain loops back to this file")
    data = read_yaml(path)
    base = data.pop("_base_", None)
    values, origins = {}, {}
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: _base_ must be a file path")
        values, origins = _load_chain(os.path.join(os.path.dirname(path), base), seen | {path}, choices)
    for key, value in _flatten(data, path, known=set(_defaults()))[0].items():
        values[key] = _checked(key, value, path, choices)
        origins[key] = path
    return values, origins


def parse_override(text):
    """'key=value' -> (key, value), the value read as YAML ('5' -> 5, '[1,2]' -> [1, 2])."""
    if "=" not in text or text.startswith("="):
        raise ConfigError(f"{COMMAND_LINE}: {text!r} is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if isinstance(_defaults().get(key), str):
        return key, raw.strip()  # string keys take the text verbatim (no YAML `off` -> false)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(path, overrides=(), *, choices):
    """Resolve `path` (with its _base_ chain and defaults) plus 'key=value' overrides.

    choices: {key: allowed values} for the keys that pick from a registry."""
    values = dict(_defaults())
    origins = {key: DEFAULTS_FILE for key in values}
    chain_values, chain_origins = _load_chain(path, frozenset(), choices)
    values.update(chain_values)
    origins.update(chain_origins)
    for text in overrides:
        key, value = parse_override(text)
        values[key] = _checked(key, value, COMMAND_LINE, choices)
        origins[key] = COMMAND_LINE
    return Config(validate(values, origins), origins, path, choices)


def save_config(cfg, path):
    """Write the resolved keys as YAML (atomically), for the record next to the results."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=True))
