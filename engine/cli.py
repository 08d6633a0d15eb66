"""What train.py and test.py share: argument parsing and one-line errors for bad input."""
import argparse
import os
import sys

from util.config import ConfigError, load_config
from util.distributed import cleanup

# Bad input (a missing file, a wrong key or value) is reported in one line; FSS_DEBUG=1 shows
# the traceback instead.
USER_ERRORS = (ConfigError, FileNotFoundError, ValueError)


def run(doc, body, argv=None):
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file, e.g. config/pascal_split0.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value, any key of config/defaults.yaml")
    args = parser.parse_args(argv)
    try:
        body(load_config(args.config, args.overrides))
    except USER_ERRORS as e:
        if os.environ.get("FSS_DEBUG"):
            raise
        sys.exit(f"error: {e}")
    finally:
        cleanup()
