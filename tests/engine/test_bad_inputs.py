"""One line for every bad input: each case runs the real command (train.py, test.py or a tool)
in-process through its entry point and checks that it ends with exactly one `error: ...` line
that names the culprit, and no traceback."""
import os
import shutil

import pytest
import torch

import train
from engine.command import config_command
from engine.tester import run_test
from engine.trainer import Trainer
from tests.helpers.engine import write_config
from tools.convert import main as convert_main
from util.cli import run_main


def one_line_error(run):
    """Run a command's main under run_main; return its one error line."""
    with pytest.raises(SystemExit) as info:
        run()
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in message
    return message


def trainer_command(config, *overrides):
    return lambda: config_command(train.__doc__, lambda cfg: Trainer(cfg).fit(), ["--config", config, *overrides])


def run_test_command(config, *overrides):
    return lambda: config_command("test", run_test, ["--config", config, *overrides])


@pytest.fixture
def config(tmp_path, synthetic_voc, data_cache_dir):
    return write_config(tmp_path, synthetic_voc, data_cache_dir)


@pytest.mark.parametrize("overrides, culprit", [
    (["base_lr=.nan"], "key 'base_lr' expects a finite number"),
    (["base_lr=.inf"], "key 'base_lr' expects a finite number"),
    (["train_num=1"], "command line: key 'train_num' = 1 is smaller than one batch"),
    (["best_copy=out/{fold}.pth"], "key 'best_copy' = 'out/{fold}.pth' uses unknown placeholder {fold}"),
    (["data_root=/nowhere/at/all"], "data_root /nowhere/at/all is not a directory"),
    (["pretrained=/nowhere/w.pth"], "pretrained /nowhere/w.pth does not exist"),
    (["arch=bam", "base_weight=/nowhere/{split}.pth"], "base_weight /nowhere/0.pth: bam's base learner is missing"),
])
def test_bad_training_inputs(config, overrides, culprit):
    assert culprit in one_line_error(trainer_command(config, *overrides))


def test_bad_devices(config):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "device=cuda but torch sees no CUDA device" in one_line_error(trainer_command(config, "device=cuda"))
    assert "amp=bf16 needs CUDA, which this machine lacks" in one_line_error(
        trainer_command(config, "device=auto", "amp=bf16"))


def test_an_output_folder_that_cannot_be_written(config, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    message = one_line_error(trainer_command(config, f"exp_dir={tmp_path / 'file' / 'exp'}"))
    assert f"exp_dir {tmp_path / 'file' / 'exp'}: {tmp_path / 'file'} is not a writable folder" in message


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"PK\x03\x04broken zip"])
def test_empty_or_garbage_weight_files(config, tmp_path, content):
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    assert f"{path}: not a readable pretrained weight file" in one_line_error(trainer_command(config, f"pretrained={path}"))
    assert f"{path}: not a readable checkpoint" in one_line_error(run_test_command(config, f"weight={path}"))


def test_a_key_given_twice_names_the_file(tmp_path, config):
    twice = tmp_path / "twice.yaml"
    twice.write_text(open(config).read() + "epochs: 3\nepochs: 4\n")
    assert f"{twice}: not valid YAML (key 'epochs' is given twice (line" in one_line_error(trainer_command(str(twice)))


def test_a_list_that_is_not_utf8_names_the_file(config, tmp_path, synthetic_voc):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(open(os.path.join(synthetic_voc, "train.txt"), "rb").read() + "caf\xe9\n".encode("latin-1"))
    assert f"list {bad} is not UTF-8 text" in one_line_error(trainer_command(config, f"train_list={bad}"))


def test_a_truncated_image_found_in_a_worker(config, tmp_path, synthetic_voc):
    root = tmp_path / "voc"
    shutil.copytree(synthetic_voc, root)
    for image in (root / "JPEGImages").iterdir():  # whichever the first batch reads
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    message = one_line_error(trainer_command(config, f"data_root={root}", f"train_list={root}/train.txt",
                                             f"val_list={root}/val.txt", "workers=1"))
    assert f"image {root}/JPEGImages/" in message and "is truncated (the JPEG has no end marker)" in message


def test_convert_to_a_folder_or_an_unwritable_place(tmp_path):
    from tests.model.test_keymap import build, published_file
    published_file(build("pspnet"), "pspnet", tmp_path / "psp.pth")
    (tmp_path / "file").write_text("x")
    for target in (tmp_path, tmp_path / "file" / "out.pth"):
        message = one_line_error(lambda: run_main(convert_main, ["--arch", "pspnet", str(tmp_path / "psp.pth"),
                                                                 str(target)]))
        assert f"{target}: cannot be written" in message
