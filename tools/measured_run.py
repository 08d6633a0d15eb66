"""python -m tools.measured_run [--crash-after-epoch N] SCRIPT [args...]: run train.py or
test.py (SCRIPT) as __main__ in this process, then print one line of what it measured:

    measured: steps=N iterations_per_second=X peak_allocated_mb=Y

steps and iterations_per_second count optimizer steps (timed after --skip warm-up steps:
cudnn autotuning, DataLoader start); peak_allocated_mb is torch.cuda.max_memory_allocated
(absent without CUDA). --crash-after-epoch N ends training with exit code 75 when epoch N
(1-based) is done, as a crash would, so that a resume can be checked. tools.gpu_check runs
the project's commands through it; works under torchrun too.
"""
import argparse
import os
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

CRASH_EXIT = 75
MEASURED = "measured:"


class StepClock:
    """Times optimizer steps (device synchronised) after the first `skip`."""

    def __init__(self, skip):
        self.skip, self.times = skip, []

    def __call__(self, optimizer, args, kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def summary(self):
        parts = [f"steps={len(self.times)}"]
        timed = self.times[self.skip:]
        if len(timed) >= 2:
            parts.append(f"iterations_per_second={(len(timed) - 1) / (timed[-1] - timed[0]):.4f}")
        if torch.cuda.is_available():
            parts.append(f"peak_allocated_mb={torch.cuda.max_memory_allocated() / 2**20:.1f}")
        return f"{MEASURED} " + " ".join(parts)


def crash_after(epochs):
    """Make Trainer.train_epoch exit with CRASH_EXIT once `epochs` epochs are done."""
    from engine.trainer import Trainer
    original = Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch >= epochs:
            raise SystemExit(CRASH_EXIT)
        original(self, epoch)

    Trainer.train_epoch = train_epoch


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.measured_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crash-after-epoch", type=int, default=0)
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the rate")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    script = os.path.abspath(args.script)
    sys.path.insert(0, os.path.dirname(script))
    if args.crash_after_epoch:
        crash_after(args.crash_after_epoch)
    clock = StepClock(args.skip)
    register_optimizer_step_post_hook(clock)
    sys.argv = [script] + args.args
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        code = done.code
    if int(os.environ.get("RANK", "0")) == 0:
        print(clock.summary(), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
