"""Progress and time estimates: the test's bar over every seed's batches, and the training
estimate, which counts the validations still to come."""
from tqdm import tqdm

# Before the first validation has been timed, one validation batch is guessed to cost this
# fraction of a training step per sample (a forward without the backward and the update);
# the measured time replaces the guess once a validation has run.
FORWARD_SHARE = 1 / 3


class TestProgress:
    """One bar over all seeds' batches (an on_batch callback of engine.evaluate.evaluate);
    its estimate covers every seed. Drawn on the main process only."""

    def __init__(self, seeds, batches_per_seed, main):
        self.bar = tqdm(total=seeds * batches_per_seed, desc=f"test ({seeds} seeds)", unit="batch",
                        disable=not main, dynamic_ncols=True, mininterval=1.0)

    def __call__(self, batch, outputs):
        self.bar.update()

    def close(self):
        self.bar.close()


def validations_left(epochs_done, epochs, val_every):
    """How many validations the remaining epochs run (every val_every-th epoch and the last)."""
    return sum(1 for e in range(epochs_done + 1, epochs + 1) if e % val_every == 0 or e == epochs)


def training_eta(iterations_left, seconds_per_iteration, validations, seconds_per_validation):
    """Seconds to the end of training: the remaining steps plus the remaining validations."""
    return iterations_left * seconds_per_iteration + validations * seconds_per_validation


def guessed_validation_seconds(val_batches, batch_size_val, batch_size, seconds_per_iteration):
    """A validation's time before one was measured (FORWARD_SHARE of a step per sample)."""
    return val_batches * batch_size_val / batch_size * seconds_per_iteration * FORWARD_SHARE
