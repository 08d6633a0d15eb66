"""The training loop behind train.py: one loop for every architecture and fine-tuning mode.

Determinism: episodes depend on (seed, epoch, index), the sampler's order on (seed, epoch), and
torch's RNG (dropout) is reseeded at every epoch from (seed, epoch, rank); the learning rate is
a function of the global iteration. So a run resumed from last.pth continues exactly as the
uninterrupted run would have.

Safety: the run directory is locked while training and never trained into afresh; a loss that
is not finite or above max_loss stops the run with one line, and no checkpoint ever holds a
non-finite value (the last good ones stay).
"""
import math
import os
import time

import torch
from tqdm import tqdm

from engine.checkpoint import (INFERENCE, TRAINING, DivergedError, check_same_run, load_checkpoint,
                               save_checkpoint)
from engine.evaluate import ALL_FOREGROUND, evaluate, evaluator_factory
from engine.inputs import check_inputs
from engine.loaders import build_dataset, build_loader
from engine.logger import get_logger
from engine.model_state import (frozen_digest, inference_state, restore_training_state, training_state,
                                weight_references)
from engine.optim import build_optimizer, lr_factor, optimizer_step, set_lr
from engine.pictures import EpisodePictures
from engine.progress import guessed_validation_seconds, training_eta, validations_left
from engine.run_dir import RunDir, stamped
from engine.runtime import Runtime, barrier, freeze_batchnorm, step_pixel_counts, to_device
from model.backbone import fill_path
from model.common import PIXEL_COUNTS
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
        self.main = self.rt.dist.is_main
        self.run = RunDir(cfg.exp_path)
        if self.main:
            self.run.acquire()
        try:
            self._setup(cfg, self.rt.dist)
        except BaseException:
            self.run.release()
            raise

    def _setup(self, cfg, dist):
        if self.main and not cfg.resume:
            self.run.check_fresh()
        self.log = get_logger(stamped(self.run.result, "train", "log"), self.main)
        if self.main:
            save_config(cfg, os.path.join(self.run.result, "config.yaml"))
        if cfg.batch_size % dist.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of "
                             f"processes ({dist.world_size}): it is the total over all of them")

        seed_everything(cfg.seed)
        self.fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
        self.model, summary = build_model(cfg, self.fold)
        self.backbone_frozen = summary.finetune.trainable == 0
        self.references = weight_references(cfg, self.model, training=True) if self.main else {}
        self.frozen_digest = frozen_digest(self.model)
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
        self.new_evaluator = evaluator_factory(self.model, self.fold, cfg)
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
        self.validation_seconds = None  # the last validation's time, for the estimate
        if cfg.resume:
            self._resume(cfg.resume)

    # -- checkpoints ---------------------------------------------------------------------
    def _resume(self, path):
        if path == "auto":
            path = self.run.last
            if not os.path.isfile(path):
                self.log.info(f"resume=auto: no {path} yet, starting fresh")
                return
        ckpt = load_checkpoint(path)
        check_same_run(self.cfg, ckpt, path)
        restore_training_state(self.model, ckpt, path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        for key in self.state:
            self.state[key] = ckpt[key]
        self.log.info(f"resumed from {path}: epoch {self.state['epoch']}, iteration {self.state['iteration']}")

    def _save(self, improved):
        if not self.main:
            return
        extra = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        save_checkpoint(self.run.last, TRAINING, training_state(self.model), self.cfg,
                        optimizer=self.optimizer.state_dict(), frozen_digest=self.frozen_digest,
                        references=self.references, **self.state, **extra)
        if improved:
            referenced = set(self.model.referenced_parts.values())
            save_checkpoint(self.run.best, INFERENCE, inference_state(self.model), self.cfg,
                            references={k: v for k, v in self.references.items() if k in referenced},
                            backbone_frozen=self.backbone_frozen, **self.state)
            if self.cfg.best_copy:
                target = fill_path(self.cfg, "best_copy")
                atomic_copy(self.run.best, target)
                self.log.info(f"best checkpoint also written to {target}")

    # -- loops -----------------------------------------------------------------------------
    def train_epoch(self, epoch):
        cfg, rt = self.cfg, self.rt
        self.net.train()
        if cfg.fix_bn:
            freeze_batchnorm(self.model)
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
            if rt.dist.enabled:  # losses normalised by the step's pixels over every process
                batch[PIXEL_COUNTS] = step_pixel_counts(batch)
            with rt.autocast():
                outputs = self.net(batch)
                loss, parts = self.model.loss(outputs, batch)
            optimizer_step(self.optimizer, loss, self.scaler)
            self.state["iteration"] += 1
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
            count += 1
            bar.update()
            if (i + 1) % cfg.print_freq == 0 or i + 1 == self.iters_per_epoch:
                means = {k: (v / count).item() for k, v in totals.items()}  # the only sync
                self._check_diverged(means, epoch, it)
                bar.set_postfix(loss=f"{means.get('loss', 0.0):.4f}", lr=f"{lr:.2e}")
                self._log_train(epoch, i + 1, means, lr, (time.time() - start) / (i + 1))
        bar.close()

    def _check_diverged(self, means, epoch, it):
        limit = self.cfg.max_loss
        if all(math.isfinite(v) and (not limit or v <= limit) for v in means.values()):
            return
        kept = f"the checkpoints of epoch {self.state['epoch']} are kept" if self.state["epoch"] else "nothing was saved"
        shown = ", ".join(f"{k} {v:.4g}" for k, v in means.items())
        raise DivergedError(f"the run diverged at epoch {epoch + 1}, iteration {it + 1} ({shown}; max_loss "
                            f"{limit:g}); {kept} in {self.run.snapshot}; lower base_lr or check the data")

    def _eta_seconds(self, epoch, sec_per_iter):
        """The remaining steps and validations (guessed until one validation was timed)."""
        cfg = self.cfg
        per_validation = self.validation_seconds
        if per_validation is None:
            per_validation = guessed_validation_seconds(len(self.val_loader), cfg.batch_size_val,
                                                        cfg.batch_size, sec_per_iter)
        return training_eta(self.total_iters - self.state["iteration"], sec_per_iter,
                            validations_left(epoch, cfg.epochs, cfg.val_every), per_validation)

    def _log_train(self, epoch, i, means, lr, sec_per_iter):
        left = self._eta_seconds(epoch, sec_per_iter)
        parts = "  ".join(f"{k} {v:.4f}" for k, v in means.items())
        self.log.info(f"epoch {epoch + 1}/{self.cfg.epochs} iter {i}/{self.iters_per_epoch}  {parts}  "
                      f"lr {lr:.3e}  {sec_per_iter:.2f}s/it  eta {left / 60:.1f} min")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, self.state["iteration"])
            self.writer.add_scalar("train/lr", lr, self.state["iteration"])

    def validate(self, epoch):
        pictures = EpisodePictures(self.cfg.visualize if self.writer is not None else 0)
        results, seconds = evaluate(self.model, self.val_loader, self.rt, self.new_evaluator,
                                    [pictures] if self.model.task == "episodes" else [])
        self.validation_seconds = seconds
        lines = [format_result(name, r) for name, r in results.items()]
        self.log.info(f"val epoch {epoch + 1}: " + " | ".join(lines) + f"  ({seconds:.0f}s)")
        if self.writer is not None:
            for name, r in results.items():
                if name != ALL_FOREGROUND:
                    self.writer.add_scalar(f"val/{name}_miou", r["miou"], epoch + 1)
            for n, (name, panel) in enumerate(pictures.panels):  # the same episodes every epoch
                self.writer.add_image(f"val/episode{n}", panel, epoch + 1, dataformats="HWC")
                self.writer.add_text(f"val/episode{n}", name, epoch + 1)
        return results["logits"]["miou"]

    def fit(self):
        cfg = self.cfg
        if self.main:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(self.run.result)
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
                          f"checkpoints in {self.run.snapshot}")
        finally:
            if self.writer is not None:
                self.writer.close()
            self.run.release()
        return self.state
