"""The paper's tables as data and commands: the definitions are consistent, every row's commands
resolve to the config it names, docs/paper.md is generated from them, and --run runs what is
not finished."""
import json
import os

import pytest

from engine.choices import load_config
from tools import paper
from tools.paper_doc import DOC_FILE, update_doc
from engine.tester import new_record_path
from tools.paper_runs import matching_rows, row_jobs, run_keys
from tools.paper_tables import load_tables, strategy_keys
from util.fileio import REPO_ROOT

TABLES, STRATEGIES = load_tables()
RUNNABLE = [(t, r) for t in TABLES.values() for r in t.rows if r.runnable]


def test_every_table_of_the_paper_is_defined():
    assert list(TABLES) == [str(i) for i in range(1, 14)] + ["main1", "main2"]
    printed = {"1": 6, "2": 8, "3": 6, "4": 10, "5": 4, "6": 6, "7": 5, "8": 8, "9": 4, "10": 5,
               "11": 4, "12": 4, "13": 4, "main1": 14, "main2": 13}  # rows as printed
    assert {t.id: len(t.rows) for t in TABLES.values()} == printed


@pytest.mark.parametrize("table, row", [(t, r) for t in TABLES.values() for r in t.rows],
                         ids=lambda x: getattr(x, "id", None) or getattr(x, "name", ""))
def test_printed_means_agree_with_their_folds(table, row):
    tolerance = 0.006 if row.runnable else 0.1  # other papers: one decimal, own rounding
    for values in row.paper.values():
        assert abs(sum(values[:4]) / 4 - values[4]) <= tolerance


@pytest.mark.parametrize("table, row", RUNNABLE, ids=lambda x: getattr(x, "id", None) or x.name)
def test_each_row_resolves_to_the_config_it_names(table, row):
    for shot, job in row_jobs(row, table.dataset, STRATEGIES):
        cfg = job.config()
        assert (cfg.dataset, cfg.backbone, cfg.arch, cfg.shot) == (table.dataset, row.backbone,
                                                                    row.arch, shot)
        expected = dict(row.keys, filter_novel=row.filter,
                        **strategy_keys(STRATEGIES, row.strategy, row.arch))
        for key, value in expected.items():
            assert getattr(cfg, key) == value, (job.label, key)
        assert job.train_command().startswith(f"sh train.sh {table.dataset} split{cfg.split} "
                                              f"{row.backbone} {row.keys['mode']} {row.arch} {shot}")
        assert job.test_command().startswith("sh test.sh ")
        for key, value in row.test.items():
            assert getattr(job.config(test=True), key) == value


def test_docs_paper_md_is_generated_from_the_definitions():
    with open(DOC_FILE, encoding="utf-8") as f:
        text = f.read()
    assert update_doc(text, TABLES, STRATEGIES) == text, "run python -m tools.paper --doc"


def test_table_7_prints_both_commands_of_every_row_and_fold(capsys):
    paper.main(["7"])
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 5 * 4 * 2
    for split in range(4):
        assert (f"sh train.sh pascal split{split} resnet50 partial baseline 1 ft_kernels=3x3"
                in commands)
        assert (f"sh test.sh pascal split{split} resnet50 partial baseline 1 ft_kernels=1x1"
                in commands)
        assert (f"sh train.sh pascal split{split} resnet50 freeze baseline 1 schedule=poly "
                "base_lr=0.005 head_lr_mult=10" in commands)


def test_test_only_rows_test_the_training_runs_checkpoint(capsys):
    paper.main(["3", "--folds", "2"])
    lines = capsys.readouterr().out.splitlines()
    train = load_config(os.path.join(REPO_ROOT, "config", "coco_split2.yaml"),
                        ["backbone=resnet50", "mode=svf", "arch=baseline", "shot=1"])
    weight = os.path.join(train.exp_path, "snapshot", "best.pth")
    assert f"sh test.sh coco split2 resnet50 svf baseline 1 test_num=4000 weight={weight}" in lines
    assert lines.count("sh train.sh coco split2 resnet50 svf baseline 1") == 3


def test_bam_tables_train_the_base_learner_first(capsys):
    paper.main(["main1", "--folds", "1"])
    commands = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert commands[:4] == ["sh train.sh pascal split1 vgg16 base", "sh test.sh pascal split1 vgg16 base",
                            "sh train.sh pascal split1 resnet50 base",
                            "sh test.sh pascal split1 resnet50 base"]
    assert "sh train.sh pascal split1 resnet50 svf bam 5" in commands


def test_run_skips_finished_runs_and_resumes_the_others(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(paper, "REPO_ROOT", str(tmp_path))
    monkeypatch.setattr(paper.subprocess, "run",
                        lambda command, **kw: ran.append(command) or type("R", (), {"returncode": 0}))
    items = paper.plan(TABLES["12"], STRATEGIES, folds=[0])
    done = next(i for i in items if not isinstance(i, str) and "r3" in i.label)
    cfg = done.config(test=True)
    path = tmp_path / new_record_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"config": cfg.to_dict(), "per_seed": [
        {"seed": 1, "results": {"logits": {"miou": 0.6}}}]}))
    paper.main(["12", "--folds", "0", "--run"])
    assert len(ran) == 2 * 3  # rows 1, 2 and 4: train then test
    assert all(c.endswith("resume=auto") for c in ran[::2])
    assert not any("svf_param=exp " in c or c.endswith("svf_param=exp") for c in ran)
    assert f"# finished, skipped: {done.label}" in capsys.readouterr().out


def test_run_refuses_to_resume_another_configurations_run(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "REPO_ROOT", str(tmp_path))
    monkeypatch.setattr(paper.subprocess, "run", lambda *a, **k: pytest.fail("must not run"))
    job = next(i for i in paper.plan(TABLES["2"], STRATEGIES, [0]) if not isinstance(i, str)
               and i.label.startswith("supplement Table 2 r1"))
    saved = tmp_path / job.config().exp_path / "result" / "config.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text("filter_novel: true\n")
    if job.config().exp_path != job.config().replace(filter_novel=True).exp_path:
        pytest.skip("the experiment naming separates filtered and unfiltered runs")
    with pytest.raises(ValueError, match="filter_novel=True; the experiment directory naming"):
        paper.execute([job], run_keys(TABLES, STRATEGIES))


def test_rows_are_found_from_a_config():
    config = os.path.join(REPO_ROOT, "config", "pascal_split1.yaml")
    found = matching_rows(load_config(config, ["mode=partial", "ft_kernels=3x3"]), TABLES, STRATEGIES)
    assert [(r.label, s) for r, s in found] == [("supplement Table 7 r3", 1)]
    unfiltered = matching_rows(load_config(config, ["filter_novel=false", "shot=5"]), TABLES, STRATEGIES)
    assert [r.label for r, _ in unfiltered] == ["supplement Table 4 r10"]
    assert not matching_rows(load_config(config, ["schedule=poly"]), TABLES, STRATEGIES)


@pytest.mark.parametrize("text, message", [
    ("strategies: {svf: {}}\ntables: {x: {title: t}}\n", "table x: a table has exactly the fields"),
    ("strategies: {svf: {}}\ntables:\n  x: {title: t, source: s, dataset: voc, backbone: r, "
     "shots: [1], filter: true, about: a, rows: []}\n", "dataset must be one of pascal, coco"),
    ("strategies: {svf: {}}\ntables:\n  x: {title: t, source: s, dataset: pascal, backbone: r, "
     "shots: [1], filter: true, about: a, rows: [{name: n, keys: {}}]}\n", "needs keys.mode"),
    ("strategies: {svf: {}}\ntables:\n  x: {title: t, source: s, dataset: pascal, backbone: r, "
     "shots: [1], filter: true, about: a, rows: [{name: n, keys: {mode: svf}, paper: {5: [1]}}]}\n",
     "paper 5-shot must be five numbers"),
])
def test_bad_definitions_are_one_line(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_tables(str(path))
    assert "\n" not in str(err.value)


def test_unknown_table_is_one_line():
    with pytest.raises(ValueError, match="table '14' is not defined; choose one of 1, 2"):
        paper.main(["14"])
