"""How every command of the project ends: bad input (a missing file, a wrong key or value) is
one line `error: ...` naming the file, key or value; FSS_DEBUG=1 shows the traceback instead."""
import argparse
import os
import sys

USER_ERRORS = (FileNotFoundError, ValueError)  # util.config.ConfigError is a ValueError


def run_main(main, argv=None):
    """sys.exit(main(argv)), with USER_ERRORS printed as one line."""
    try:
        code = main(argv)
    except USER_ERRORS as err:
        if os.environ.get("FSS_DEBUG"):
            raise
        sys.exit(f"error: {err}")
    sys.exit(code)


def command_parser(module, doc, epilog=None):
    """The argument parser of `python -m <module>`, whose --help prints the module's docstring."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
