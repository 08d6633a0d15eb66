"""Entry point of the DDP test: train.py with dropout switched off (so one and two processes
can be compared weight for weight), saving the initial weights to <exp_dir>/init.pth."""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from engine.trainer import Trainer  # noqa: E402
from engine.choices import load_config  # noqa: E402
from engine.runtime import cleanup_distributed as cleanup  # noqa: E402


def main():
    nn.Dropout.forward = nn.Dropout2d.forward = lambda self, x: x
    cfg = load_config(sys.argv[1], sys.argv[2:])
    trainer = Trainer(cfg)
    if trainer.main:
        torch.save(trainer.model.state_dict(), os.path.join(cfg.exp_dir, "init.pth"))
    trainer.fit()
    cleanup()


if __name__ == "__main__":
    main()
