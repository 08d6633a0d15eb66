"""Config -> datasets and DataLoaders (util.data's datasets take explicit arguments; this maps
the config keys onto them)."""
from torch.utils.data import DataLoader

from util.data.base_classes import BaseClassDataset
from util.data.collate import collate_episodes
from util.data.episodes import EpisodeDataset
from util.data.sampler import ShardedSampler
from util.seeding import torch_generator


def build_dataset(cfg, fold, task, mode, seed):
    """Episodes ("episodes" task) or base-class images ("semantic", BAM's base learner)."""
    list_file = cfg.train_list if mode == "train" else cfg.val_list
    common = dict(train_size=cfg.train_size, val_size=cfg.val_size, scale_range=tuple(cfg.train_scale),
                  seed=seed, ori_resize=cfg.ori_resize)
    if task == "semantic":
        return BaseClassDataset(cfg.data_root, list_file, fold, mode, **common)
    return EpisodeDataset(cfg.data_root, list_file, fold, cfg.shot, mode, filter_novel=cfg.filter_novel,
                          test_num=cfg.test_num, index_cache_dir=cfg.index_cache_dir or None,
                          index_workers=cfg.index_workers or None, **common)


def build_loader(dataset, batch_size, train, seed, dist, workers, pin_memory, num_samples=0):
    """A DataLoader over this process's share of `dataset` (`num_samples` per epoch in training;
    0 = len(dataset)).

    Its own torch.Generator keeps the global RNG untouched (so resuming is exact), and the
    sampler's order depends on (seed, epoch) only."""
    sampler = ShardedSampler(len(dataset), shuffle=train, seed=seed, rank=dist.rank,
                             world_size=dist.world_size, drop_last=train, num_samples=num_samples)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_episodes, pin_memory=pin_memory, drop_last=train,
                      generator=torch_generator(seed))
