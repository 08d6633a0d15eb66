"""One logger per run: the console (messages only) and a log file (timestamped) on the main
process; warnings only elsewhere. Console lines go through tqdm.write, so that they appear
above a progress bar instead of on its line."""
import logging
import os
import sys

from tqdm import tqdm


class _Console(logging.StreamHandler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging's convention: a failed write is reported, never raised
            self.handleError(record)


def get_logger(log_file=None, main=True, name="fss"):
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if main else logging.WARNING)
    console = _Console(sys.stdout)  # the console shows the message alone
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_file and main:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    return logger
