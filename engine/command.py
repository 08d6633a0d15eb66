"""The command line of train.py and test.py: --config FILE plus key=value overrides."""
import argparse

from engine.choices import current_choices, load_config
from engine.runtime import cleanup_distributed
from util.cli import run_main


def add_config_arguments(parser):
    """--config FILE and the key=value overrides."""
    parser.add_argument("--config", required=True, help="YAML file, e.g. config/pascal_split0.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value, any key of config/defaults.yaml")


def config_command(doc, body, argv=None):
    """Parse --config and the overrides, then body(cfg); bad input ends in one line."""
    epilog = "choices:\n" + "\n".join(f"  {key:<12} {', '.join(values)}"
                                       for key, values in current_choices().items())
    parser = argparse.ArgumentParser(description=doc, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)

    def main(args):
        args = parser.parse_args(args)
        try:
            body(load_config(args.config, args.overrides))
        finally:
            cleanup_distributed()
        return 0

    run_main(main, argv)
