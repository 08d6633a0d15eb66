"""Samplers whose order depends on (seed, epoch) only, shared out across processes.

Training: one permutation per epoch (of `num_samples` items: a random subset when fewer than
the dataset, the permutation repeated when more), cut to a multiple of the process count,
rank r taking every world-th index; so the union of what the processes see at step s is the
batch a single process sees at step s with the whole batch. Evaluation: no shuffling, rank r
taking indices r, r + world, ...; every item is scored exactly once over all processes.
"""
import torch
from torch.utils.data import Sampler

from util.seeding import torch_generator


class ShardedSampler(Sampler):
    def __init__(self, length, shuffle, seed=0, rank=0, world_size=1, drop_last=True, num_samples=None):
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.num_samples = num_samples or length
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _order(self):
        if not self.shuffle:
            return list(range(self.num_samples))
        g = torch_generator(self.seed, self.epoch)
        order = []
        while len(order) < self.num_samples:
            order += torch.randperm(self.length, generator=g).tolist()
        return order[:self.num_samples]

    def _total(self):
        n = self.num_samples
        return n - n % self.world_size if self.drop_last else n

    def __iter__(self):
        return iter(self._order()[:self._total()][self.rank::self.world_size])

    def __len__(self):
        return len(range(self.rank, self._total(), self.world_size))
