"""How every command of the project ends: bad input (a missing file, a wrong key or value) is
one line `error: ...` naming the file, key or value; FSS_DEBUG=1 shows the traceback instead."""
import argparse
import os
import sys

# Problems of the input or the environment, never of the code: a missing or unwritable file
# (OSError), a wrong value (ValueError; util.config.ConfigError is one).
USER_ERRORS = (OSError, ValueError)
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def one_line(err):
    """The message of `err` as one line. An error raised in a DataLoader worker arrives with
    the worker's traceback in its text: its last line is the message."""
    text = str(err)
    if _WORKER_TRACEBACK in text:
        text = text.rstrip().splitlines()[-1]
        text = text.split(": ", 1)[1] if ": " in text else text
    return " ".join(text.split()) or type(err).__name__


def run_main(main, argv=None):
    """sys.exit(main(argv)), with USER_ERRORS printed as one line."""
    try:
        code = main(argv)
    except USER_ERRORS as err:
        if os.environ.get("FSS_DEBUG"):
            raise
        sys.exit(f"error: {one_line(err)}")
    sys.exit(code)


def command_parser(module, doc, epilog=None):
    """The argument parser of `python -m <module>`, whose --help prints the module's docstring."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
