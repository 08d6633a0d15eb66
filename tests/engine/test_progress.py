"""Progress and estimates: the training estimate counts the validations to come, and log lines
never land on a progress bar's line."""
import io

import pytest
from tqdm import tqdm

from engine.logger import get_logger
from engine.progress import guessed_validation_seconds, training_eta, validations_left


@pytest.mark.parametrize("done, epochs, every, expected", [
    (0, 10, 1, 10), (0, 10, 3, 4), (9, 10, 3, 1), (6, 10, 3, 2), (10, 10, 1, 0)])
def test_validations_left_counts_every_kth_epoch_and_the_last(done, epochs, every, expected):
    assert validations_left(done, epochs, every) == expected


def test_training_eta_includes_validation():
    assert training_eta(100, 0.5, 3, 20.0) == 100 * 0.5 + 3 * 20.0
    # before a validation was timed: a third of a step per sample, for every val batch
    assert guessed_validation_seconds(60, 1, 8, 2.4) == pytest.approx(60 / 8 * 2.4 / 3)


def test_log_lines_do_not_land_on_the_progress_bar_line():
    stream = io.StringIO()
    log = get_logger(None, True, name="progress-test")
    log.handlers[0].setStream(stream)
    bar = tqdm(total=4, desc="test", file=stream, mininterval=0)
    bar.update()
    log.info("seed 1 logits: mIoU 0.5000")
    bar.update()
    bar.close()
    line = next(l for l in stream.getvalue().split("\n") if "mIoU" in l)
    assert line.split("\r")[-1] == "seed 1 logits: mIoU 0.5000"
