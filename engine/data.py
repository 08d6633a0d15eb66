"""Config -> datasets and DataLoaders (util's datasets take explicit arguments; this maps keys)."""
import torch
from torch.utils.data import DataLoader

from util.base_dataset import BaseDataset
from util.collate import collate_episodes
from util.episodes import EpisodeDataset
from util.sharded_sampler import ShardedSampler


def build_dataset(cfg, task, mode, seed):
    """Episodes ("episodes" task) or base-class images ("semantic", BAM's base learner)."""
    list_file = cfg.train_list if mode == "train" else cfg.val_list
    common = dict(use_split_coco=cfg.use_split_coco, train_size=cfg.train_size, val_size=cfg.val_size,
                  scale_range=tuple(cfg.train_scale), seed=seed, ori_resize=cfg.ori_resize)
    if task == "semantic":
        return BaseDataset(cfg.data_root, list_file, cfg.dataset, cfg.split, mode, **common)
    return EpisodeDataset(cfg.data_root, list_file, cfg.dataset, cfg.split, cfg.shot, mode,
                          filter_novel=cfg.filter_novel, test_num=cfg.test_num,
                          index_cache_dir=cfg.index_cache_dir or None,
                          workers_for_index=cfg.index_workers or None, **common)


def build_loader(dataset, batch_size, train, seed, dist, workers, pin_memory, num_samples=0):
    """A DataLoader over this process's share of `dataset` (`num_samples` per epoch in training;
    0 = len(dataset)).

    Its own torch.Generator keeps the global RNG untouched (so resuming is exact), and the
    sampler's order depends on (seed, epoch) only."""
    sampler = ShardedSampler(len(dataset), shuffle=train, seed=seed, rank=dist.rank,
                             world_size=dist.world_size, drop_last=train, num_samples=num_samples)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_episodes, pin_memory=pin_memory, drop_last=train,
                      generator=generator)
