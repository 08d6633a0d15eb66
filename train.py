"""Train any architecture with any fine-tuning mode on one fold.

    python train.py --config config/pascal_split0.yaml [key=value ...]
    torchrun --nproc_per_node=4 train.py --config config/pascal_split0.yaml

Keys and their meaning: config/defaults.yaml. Outputs go to
exp/<dataset>/<arch>/split<k>/<backbone>/<mode>/<shot>shot/ (snapshot/ and result/).
"""
from engine.command import config_command
from engine.trainer import Trainer

if __name__ == "__main__":
    config_command(__doc__, lambda cfg: Trainer(cfg).fit())
