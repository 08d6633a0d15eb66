"""The house rules that keep the layout readable: imports point one way, choice lists live in
their registries, and the commands that moved to tools/ say where they went."""
import ast
import os
import subprocess
import sys

import pytest

from engine import choices
from model import registry
from util.fileio import REPO_ROOT

PACKAGES = ("svf", "util", "model", "engine", "tools")
# what each package may import from the project (the dependency rule of docs/ARCHITECTURE.md)
ALLOWED = {"svf": {"svf"}, "util": {"util"}, "model": {"util", "svf", "model"},
           "engine": {"util", "svf", "model", "engine"}, "tools": set(PACKAGES)}


def project_imports(path):
    """The project packages a Python file imports (top-level names), relative imports included
    as the file's own package."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0] if node.level == 0 else "<relative>")
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    wrong = []
    for folder, _, files in os.walk(os.path.join(REPO_ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                imported = project_imports(path) - {"<relative>"}
                bad = (imported & set(PACKAGES)) - ALLOWED[package]
                if bad:
                    wrong.append(f"{os.path.relpath(path, REPO_ROOT)} imports {sorted(bad)}")
    assert not wrong, wrong


def test_svf_needs_only_torch():
    third_party = set()
    for name in os.listdir(os.path.join(REPO_ROOT, "svf")):
        if name.endswith(".py"):
            third_party |= project_imports(os.path.join(REPO_ROOT, "svf", name))
    assert third_party - {"torch", "svf", "<relative>", "math", "contextlib", "copy", "os",
                          "pickle", "tempfile"} == set()


def test_a_registered_arch_is_a_valid_config_value(monkeypatch):
    path = os.path.join(REPO_ROOT, "config", "pascal_split0.yaml")
    with pytest.raises(ValueError, match="key 'arch' must be one of"):
        choices.load_config(path, ["arch=mynet"])
    monkeypatch.setitem(registry.ARCHS, "mynet", registry.ARCHS["baseline"])
    assert choices.load_config(path, ["arch=mynet"]).arch == "mynet"


@pytest.mark.parametrize("old, new", [
    ("util.index", "tools.index"), ("util.prepare_pascal", "tools.prepare_pascal"),
    ("util.prepare_coco", "tools.prepare_coco"), ("util.synthetic", "tools.synthetic"),
    ("util.bench_data", "tools.bench_data"), ("svf.bench", "tools.bench_svf"),
    ("svf.bench_layers", "tools.bench_svf_layers"), ("svf.exactness", "tools.exactness"),
    ("model.convert", "tools.convert"),
])
def test_moved_commands_point_to_their_new_place(old, new):
    out = subprocess.run([sys.executable, "-m", old, "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"python -m {old} has moved: run python -m {new}")
    assert out.stderr.count("\n") == 1
    help_text = subprocess.run([sys.executable, "-m", new, "--help"], capture_output=True, text=True,
                               cwd=REPO_ROOT, timeout=120)
    assert help_text.returncode == 0 and "usage:" in help_text.stdout
