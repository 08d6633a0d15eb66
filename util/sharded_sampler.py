"""Samplers whose order depends on (seed, epoch) only, shared out across processes.

Training: one permutation per epoch, cut to a multiple of the process count, rank r taking
every world-th index; so the union of what the processes see at step s is the batch a single
process sees at step s with the whole batch. Evaluation: no shuffling, rank r taking indices
r, r + world, ...; every episode is scored exactly once over all processes.
"""
import torch
from torch.utils.data import Sampler


class ShardedSampler(Sampler):
    def __init__(self, length, shuffle, seed=0, rank=0, world_size=1, drop_last=True):
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _order(self):
        if not self.shuffle:
            return list(range(self.length))
        g = torch.Generator()
        g.manual_seed(self.seed * 100003 + self.epoch)
        return torch.randperm(self.length, generator=g).tolist()

    def __iter__(self):
        order = self._order()
        if self.drop_last:
            order = order[:len(order) - len(order) % self.world_size]
        return iter(order[self.rank::self.world_size])

    def __len__(self):
        n = self.length - self.length % self.world_size if self.drop_last else self.length
        return len(range(self.rank, n, self.world_size))
