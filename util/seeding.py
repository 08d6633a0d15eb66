"""Every seed of the project comes from here, derived from the run's seed so that nothing
depends on the number of processes, DataLoader workers or the batch size:

- sample_rng(seed, epoch, index): the numpy generator of one sample (episode draws, transforms,
  synthetic scenes); SharedEpoch carries the epoch to DataLoader workers;
- torch_generator(seed, epoch): a private torch generator (an epoch's sample order, the
  DataLoader's worker seeds), so the global one is never drawn from;
- epoch_seed(seed, epoch, rank): torch's global seed at the start of a training epoch (dropout);
- seed_everything(seed): Python's, numpy's and torch's global generators at start-up.
"""
import random

import numpy as np
import torch


def sample_rng(seed, epoch, index):
    """The generator of one sample: a function of (seed, epoch, index) only."""
    for name, value in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def torch_generator(seed, epoch=0):
    """A torch.Generator of its own for (seed, epoch)."""
    generator = torch.Generator()
    generator.manual_seed(seed * 100003 + epoch)
    return generator


def epoch_seed(seed, epoch, rank=0):
    """torch's global seed for training epoch `epoch` on process `rank`: reseeding every
    epoch makes a resumed run draw the same dropout masks as an uninterrupted one."""
    return (seed * 1000003 + epoch) * 1009 + rank


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class SharedEpoch:
    """An epoch number kept in shared memory: `set` in the main process is seen by DataLoader
    workers, persistent ones included (they get the same storage when they start)."""

    def __init__(self):
        self._value = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set(self, epoch):
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._value[0] = int(epoch)

    def get(self):
        return int(self._value[0])
