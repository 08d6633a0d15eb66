"""Config: inheritance, sections, bare-name overrides, and one-line errors for bad input."""
import glob
import os
import re

import pytest

from engine.choices import load_config
from util.config import ConfigError
from util.fileio import REPO_ROOT

CONFIG_DIR = os.path.join(REPO_ROOT, "config")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIG_DIR, "*_split*.yaml"))))
def test_every_shipped_fold_config_loads(path):
    cfg = load_config(path)
    name = os.path.basename(path)
    assert cfg.split == int(name.split("split")[1][0])
    assert cfg.dataset in name or cfg.exp_name in name


def test_protocol_values_of_the_shipped_configs():
    pascal = load_config(os.path.join(CONFIG_DIR, "pascal_split2.yaml"))
    coco = load_config(os.path.join(CONFIG_DIR, "coco_split1.yaml"))
    assert (pascal.dataset, pascal.train_size, pascal.val_size, pascal.train_scale) == ("pascal", 473, 473, [0.9, 1.1])
    assert (coco.dataset, coco.train_size, coco.val_size, coco.train_scale) == ("coco", 641, 641, [0.8, 1.25])
    assert coco.use_split_coco and pascal.filter_novel
    assert pascal.base_lr == 0.015 and pascal.schedule == "cosine" and pascal.mode == "svf"
    assert pascal.test_seeds == [510, 365, 382, 322, 988]


def test_base_chain_sections_and_overrides(tmp_path):
    write(tmp_path, "parent.yaml", "DATA:\n  shot: 5\n  split: 1\nTRAIN:\n  base_lr: 0.02\n")
    child = write(tmp_path, "child.yaml", "_base_: parent.yaml\nsplit: 3\n")
    cfg = load_config(child, ["base_lr=1", "ft_layers=layer4", "amp=off", "pretrained="])
    assert (cfg.shot, cfg.split) == (5, 3)  # inherited, then overridden by the child
    assert cfg.base_lr == 1.0 and isinstance(cfg.base_lr, float)  # an int where a float is expected
    assert cfg.ft_layers == ["layer4"] and cfg.amp == "off" and cfg.pretrained == ""
    assert cfg.exp_path == os.path.join("exp", "pascal", "baseline", "split3", "resnet50", "svf", "5shot",
                                        "base_lr=1,ft_layers=layer4,pretrained=")


def test_yaml_off_and_exponents_read_as_meant(tmp_path):
    cfg = load_config(write(tmp_path, "a.yaml", "amp: off\nweight_decay: 5e-4\n"), ["base_lr=1e-3"])
    assert cfg.amp == "off" and cfg.weight_decay == 5e-4 and cfg.base_lr == 1e-3


@pytest.mark.parametrize("override, message", [
    ("shots=5", "unknown key 'shots' (did you mean 'shot'?)"),
    ("shot=five", "key 'shot' expects an integer, got 'five'"),
    ("fix_bn=1", "key 'fix_bn' expects true/false"),
    ("mode=lora", "key 'mode' must be one of freeze, full, partial"),
    ("split=4", "key 'split' must be 0, 1, 2 or 3"),
    ("base_lr=0", "key 'base_lr' must be positive"),
    ("svf_factors=[S,W]", "key 'svf_factors' takes a non-empty list from U, S, V"),
    ("train_scale=[1.2,0.8]", "key 'train_scale' must be [low, high]"),
    ("shot", "'shot' is not key=value"),
])
def test_bad_values_are_one_line_errors(tmp_path, override, message):
    path = write(tmp_path, "a.yaml", "split: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_impossible_combinations(tmp_path):
    path = write(tmp_path, "a.yaml", "device: cpu\n")
    with pytest.raises(ConfigError, match="amp=bf16 needs device cuda"):
        load_config(path, ["amp=bf16"])
    with pytest.raises(ConfigError, match="arch pspnet .* shot must be 1"):
        load_config(path, ["arch=pspnet", "shot=5"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"a.yaml: unknown key 'lr'"):
        load_config(write(tmp_path, "a.yaml", "lr: 0.1\n"))
    with pytest.raises(ConfigError, match="_base_ chain loops"):
        load_config(write(tmp_path, "b.yaml", "_base_: b.yaml\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "c.yaml", "split: [0\n"))
    with pytest.raises(ConfigError, match="key 'split' is set twice"):
        load_config(write(tmp_path, "d.yaml", "split: 0\nDATA:\n  split: 1\n"))


def test_config_is_read_only_and_replace_validates(tmp_path):
    cfg = load_config(write(tmp_path, "a.yaml", ""))
    with pytest.raises(AttributeError):
        cfg.shot = 5
    assert cfg.replace(shot=5).shot == 5 and cfg.shot == 1
    with pytest.raises(ConfigError):
        cfg.replace(shot="x")


@pytest.mark.parametrize("text, message", [
    ("split: 0\nsplit: 1\n", "key 'split' is given twice (line 2)"),
    ("DATA:\n  shot: 1\n  shot: 5\n", "key 'shot' is given twice (line 3)"),
])
def test_a_key_given_twice_in_one_mapping_is_an_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, "dup.yaml", text))


@pytest.mark.parametrize("override", ["base_lr=.nan", "base_lr=.inf", "weight_decay=-.inf", "base_lr=nan"])
def test_non_finite_numbers_are_refused(tmp_path, override):
    with pytest.raises(ConfigError, match=r"command line: key '\w+' expects a finite number"):
        load_config(write(tmp_path, "a.yaml", ""), [override])


def test_range_errors_name_where_the_value_came_from(tmp_path):
    path = write(tmp_path, "a.yaml", "epochs: 0\n")
    with pytest.raises(ConfigError, match=r"a.yaml: key 'epochs' must be positive"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^command line: key 'batch_size' must be positive"):
        load_config(write(tmp_path, "b.yaml", ""), ["batch_size=0"])
    with pytest.raises(ConfigError, match=r"^command line: key 'train_num' = 3 is smaller than one batch "
                                          r"\(batch_size 8\)"):
        load_config(write(tmp_path, "c.yaml", ""), ["train_num=3"])


def test_path_templates_are_checked_when_loaded(tmp_path):
    with pytest.raises(ConfigError, match=r"command line: key 'best_copy' = 'x/\{fold\}.pth' uses unknown "
                                          r"placeholder \{fold\}"):
        load_config(write(tmp_path, "a.yaml", ""), ["best_copy=x/{fold}.pth"])
    with pytest.raises(ConfigError, match="key 'base_weight' = .* is not a valid template"):
        load_config(write(tmp_path, "b.yaml", ""), ["base_weight=x/{split.pth"])


def test_the_experiment_path_tells_runs_apart(tmp_path):
    path = write(tmp_path, "a.yaml", "")
    base = load_config(path)
    assert base.exp_path.endswith(os.path.join("svf", "1shot", "default"))
    assert load_config(path, ["workers=1", "device=cpu", "test_seeds=[1]"]).exp_path == base.exp_path
    tags = {load_config(path, [o]).exp_path for o in
            ["ft_layers=layer4", "svf_factors=[U,S]", "svf_param=exp", "filter_novel=false", "base_lr=0.01",
             "train_size=417", "seed=7", "svf_rank_ratio=0.5", "train_list=lists/pascal/train_aug.txt"]}
    assert len(tags) == 9 and base.exp_path not in tags
    long = load_config(path, ["train_list=lists/pascal/train_aug.txt"]).exp_path
    assert re.search(r"run-[0-9a-f]{10}$", long)  # a path value is not plain: hashed
