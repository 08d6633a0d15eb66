"""tools.plot_curves: the curves are the events a tensorboardX writer wrote, one line per run,
named by what sets the runs apart; missing runs or tags are one line."""
import os

import cv2
import pytest
from tensorboardX import SummaryWriter

from engine.choices import load_config
from tools import plot_curves as tool
from tools.plotting import DPI
from util.fileio import REPO_ROOT

POINTS = {"svf": [(1, 0.50), (2, 0.61), (3, 0.64)], "partial": [(2, 0.40), (4, 0.45)]}


def write_events(result_dir, points, tag=tool.TAG):
    writer = SummaryWriter(result_dir)
    writer.add_scalar("train/loss", 1.0, 0)
    for epoch, value in points:
        writer.add_scalar(tag, value, epoch)
    writer.close()


@pytest.fixture
def runs(tmp_path):
    paths = []
    for mode, points in POINTS.items():
        run = tmp_path / "exp" / "pascal" / "baseline" / "split0" / "resnet50" / mode / "1shot"
        write_events(str(run / "result"), points)
        paths.append(str(run))
    return paths


def test_read_curve_gives_the_written_points(runs):
    for run, points in zip(runs, POINTS.values()):
        epochs, values = tool.read_curve(run)
        assert epochs == [e for e, _ in points]
        assert values == pytest.approx([v for _, v in points])


def test_plot_has_one_line_per_run_with_its_points(runs, tmp_path, capsys):
    out = str(tmp_path / "curves.png")
    tool.main(runs + ["--out", out])
    image = cv2.imread(out)
    assert image.shape[:2] == (5 * DPI, 8 * DPI)
    printed = capsys.readouterr().out
    assert "svf: best 0.6400 at epoch 3 (3 points)" in printed
    curves = [(name,) + tool.read_curve(run) for name, run in zip(["svf", "partial"], runs)]
    ax = tool.plot_curves(curves, "t").axes[0]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["svf", "partial"]
    for line, points in zip(ax.lines, POINTS.values()):
        assert list(line.get_xdata()) == [e for e, _ in points]
        assert list(line.get_ydata()) == pytest.approx([100 * v for _, v in points])


def test_legend_names_are_what_differs():
    assert tool.distinguishing_names(["exp/a/svf/1shot", "exp/a/partial/1shot"]) == ["svf", "partial"]
    assert tool.distinguishing_names(["x/svf/1shot", "x/svf/5shot", "y/bn/1shot"]) == \
        ["x/svf/1shot", "x/svf/5shot", "y/bn/1shot"]


def test_runs_from_a_config(tmp_path):
    exp = str(tmp_path / "exp")
    config = os.path.join(REPO_ROOT, "config", "pascal_split0.yaml")
    run = load_config(config, [f"exp_dir={exp}", "mode=bn"]).exp_path
    write_events(os.path.join(run, "result"), [(1, 0.3)])
    out = str(tmp_path / "c.png")
    tool.main(["--config", config, "--runs", f"exp_dir={exp} mode=bn", "--out", out])
    assert os.path.isfile(out)


def test_missing_runs_and_tags_are_one_line(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="no tensorboard event files"):
        tool.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match=r"no scalar 'val/other'; it has train/loss, val/logits_miou"):
        tool.main([runs[0], "--tag", "val/other", "--out", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="--names gives 1 names for 2 runs"):
        tool.main(runs + ["--names", "a", "--out", str(tmp_path / "x.png")])
