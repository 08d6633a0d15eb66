"""Evaluate a trained model on the fold's val episodes, over every seed of `test_seeds`.

    python test.py --config config/pascal_split0.yaml [weight=PATH] [key=value ...]

Without `weight`, the best checkpoint of the matching exp dir is used. Keys: config/defaults.yaml.
"""
from engine.command import config_command
from engine.tester import run_test

if __name__ == "__main__":
    config_command(__doc__, run_test)
