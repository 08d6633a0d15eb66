"""The training loop behind train.py: one loop for every architecture and fine-tuning mode.

Determinism: episodes depend on (seed, epoch, index), the sampler's order on (seed, epoch), and
torch's RNG (dropout) is reseeded at every epoch from (seed, epoch, rank); the learning rate is
a function of the global iteration. So a run resumed from last.pth continues exactly as the
uninterrupted run would have.
"""
import os
import time

import torch
from tqdm import tqdm

from engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from engine.evaluate import ALL_FOREGROUND, evaluate, evaluator_factory
from engine.inputs import check_inputs
from engine.loaders import build_dataset, build_loader
from engine.logger import get_logger
from engine.optim import build_optimizer, lr_factor, set_lr
from engine.runtime import Runtime, barrier, freeze_batchnorm, to_device
from model.registry import build_model
from util.config import save_config
from util.data.folds import get_fold
from util.fileio import atomic_copy
from util.seeding import epoch_seed, seed_everything


def format_result(name, r):
    if "fbiou" in r:
        return f"{name}: mIoU {r['miou']:.4f}  FB-IoU {r['fbiou']:.4f}"
    return f"{name}: mIoU {r['miou']:.4f} (with background {r['miou_with_background']:.4f})"


class Trainer:
    def __init__(self, cfg):
        check_inputs(cfg, training=True)
        self.cfg = cfg
        self.rt = Runtime(cfg)
        dist = self.rt.dist
        self.main = dist.is_main
        self.snapshot_dir = os.path.join(cfg.exp_path, "snapshot")
        self.result_dir = os.path.join(cfg.exp_path, "result")
        self.log = get_logger(os.path.join(self.result_dir, "train.log"), self.main)
        if self.main:
            save_config(cfg, os.path.join(self.result_dir, "config.yaml"))
        if cfg.batch_size % dist.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of "
                             f"processes ({dist.world_size}): it is the total over all of them")

        seed_everything(cfg.seed)
        self.fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
        self.model, summary = build_model(cfg, self.fold)
        self.model.to(self.rt.device)
        self.log.info(f"{cfg.arch} on {cfg.backbone}, mode {cfg.mode}, {cfg.shot}-shot, "
                      f"{cfg.dataset} fold {cfg.split}; output {cfg.exp_path}\n{summary}")
        if cfg.sync_bn and dist.enabled:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.optimizer = build_optimizer(self.model, cfg)

        task = self.model.task
        pin = self.rt.device.type == "cuda"
        self.train_set = build_dataset(cfg, self.fold, task, "train", cfg.seed)
        self.train_loader = build_loader(self.train_set, cfg.batch_size // dist.world_size, True,
                                         cfg.seed, dist, cfg.workers, pin, cfg.train_num)
        if len(self.train_loader) == 0:
            raise ValueError(f"{cfg.train_list}: {len(self.train_set)} training samples, fewer than "
                             f"one batch of {cfg.batch_size // dist.world_size} per process")
        self.val_set = build_dataset(cfg, self.fold, task, "val", cfg.val_seed)
        self.val_loader = build_loader(self.val_set, cfg.batch_size_val, False, cfg.val_seed, dist,
                                       cfg.workers, pin)
        self.new_evaluator = evaluator_factory(self.model, self.fold, cfg.ori_resize)
        self.iters_per_epoch = len(self.train_loader)
        self.total_iters = cfg.epochs * self.iters_per_epoch
        self.log.info(f"train: {len(self.train_set)} samples, {self.iters_per_epoch} iterations/epoch, "
                      f"{cfg.epochs} epochs; val: {len(self.val_set)} samples (seed {cfg.val_seed})")

        if dist.enabled:
            ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.net = self.model
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        self.state = {"epoch": 0, "iteration": 0, "best_miou": -1.0, "best_epoch": 0,
                      "epochs_since_best": 0}
        self.writer = None
        if cfg.resume:
            self._resume(cfg.resume)

    # -- checkpoints ---------------------------------------------------------------------
    def _resume(self, path):
        if path == "auto":
            path = os.path.join(self.snapshot_dir, "last.pth")
            if not os.path.isfile(path):
                self.log.info(f"resume=auto: no {path} yet, starting fresh")
                return
        ckpt = load_checkpoint(path)
        load_model_weights(self.model, ckpt, path)
        if "optimizer" not in ckpt:
            raise ValueError(f"{path}: holds no optimizer state; resume from a last.pth")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        for key in self.state:
            self.state[key] = ckpt[key]
        self.log.info(f"resumed from {path}: epoch {self.state['epoch']}, iteration {self.state['iteration']}")

    def _save(self, improved):
        if not self.main:
            return
        meta = dict(self.state, config=self.cfg.to_dict())
        extra = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        save_checkpoint(os.path.join(self.snapshot_dir, "last.pth"), self.model, self.optimizer,
                        **meta, **extra)
        if improved:
            best = os.path.join(self.snapshot_dir, "best.pth")
            save_checkpoint(best, self.model, **meta)
            if self.cfg.best_copy:
                target = self.cfg.fill("best_copy")
                atomic_copy(best, target)
                self.log.info(f"best checkpoint also written to {target}")

    # -- loops -----------------------------------------------------------------------------
    def train_epoch(self, epoch):
        cfg, rt = self.cfg, self.rt
        self.net.train()
        if cfg.fix_bn:
            freeze_batchnorm(self.model.backbone)
        self.train_set.set_epoch(epoch)
        self.train_loader.sampler.set_epoch(epoch)
        torch.manual_seed(epoch_seed(cfg.seed, epoch, rt.dist.rank))
        totals, count, start = {}, 0, time.time()
        bar = tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not self.main, dynamic_ncols=True, mininterval=1.0)
        for i, batch in enumerate(self.train_loader):
            it = self.state["iteration"]
            lr = set_lr(self.optimizer, cfg.base_lr,
                        lr_factor(it, self.total_iters, cfg.schedule, cfg.poly_power, cfg.warmup_iters))
            batch = to_device(batch, rt.device)
            with rt.autocast():
                outputs = self.net(batch)
                loss, parts = self.model.loss(outputs, batch)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.state["iteration"] += 1
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
            count += 1
            bar.update()
            if (i + 1) % cfg.print_freq == 0 or i + 1 == self.iters_per_epoch:
                means = {k: (v / count).item() for k, v in totals.items()}
                if not all(v == v and abs(v) != float("inf") for v in means.values()):
                    raise FloatingPointError(f"loss became {means} at epoch {epoch + 1}, iteration "
                                             f"{it + 1}: lower base_lr or check the data")
                bar.set_postfix(loss=f"{means.get('loss', 0.0):.4f}", lr=f"{lr:.2e}")
                self._log_train(epoch, i + 1, means, lr, (time.time() - start) / (i + 1))
        bar.close()

    def _log_train(self, epoch, i, means, lr, sec_per_iter):
        left = (self.total_iters - self.state["iteration"]) * sec_per_iter
        parts = "  ".join(f"{k} {v:.4f}" for k, v in means.items())
        self.log.info(f"epoch {epoch + 1}/{self.cfg.epochs} iter {i}/{self.iters_per_epoch}  {parts}  "
                      f"lr {lr:.3e}  {sec_per_iter:.2f}s/it  eta {left / 60:.1f} min")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, self.state["iteration"])
            self.writer.add_scalar("train/lr", lr, self.state["iteration"])

    def validate(self, epoch):
        results, seconds = evaluate(self.model, self.val_loader, self.rt, self.new_evaluator)
        lines = [format_result(name, r) for name, r in results.items()]
        self.log.info(f"val epoch {epoch + 1}: " + " | ".join(lines) + f"  ({seconds:.0f}s)")
        if self.writer is not None:
            for name, r in results.items():
                if name != ALL_FOREGROUND:
                    self.writer.add_scalar(f"val/{name}_miou", r["miou"], epoch + 1)
        return results["logits"]["miou"]

    def fit(self):
        cfg = self.cfg
        if self.main:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(self.result_dir)
        try:
            for epoch in range(self.state["epoch"], cfg.epochs):
                self.train_epoch(epoch)
                self.state["epoch"] = epoch + 1
                improved = False
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    miou = self.validate(epoch)
                    improved = miou > self.state["best_miou"]
                    if improved:
                        self.state.update(best_miou=miou, best_epoch=epoch + 1, epochs_since_best=0)
                    else:
                        self.state["epochs_since_best"] += cfg.val_every
                self._save(improved)
                barrier()
                if cfg.stop_interval and self.state["epochs_since_best"] >= cfg.stop_interval:
                    self.log.info(f"no better val mIoU for {self.state['epochs_since_best']} epochs: stopping")
                    break
            self.log.info(f"best val mIoU {self.state['best_miou']:.4f} at epoch {self.state['best_epoch']}; "
                          f"checkpoints in {self.snapshot_dir}")
        finally:
            if self.writer is not None:
                self.writer.close()
        return self.state
