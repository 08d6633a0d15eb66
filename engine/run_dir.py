"""A run's directory, exp_path/snapshot (checkpoints) and exp_path/result (logs, the resolved
config, test records). One training at a time holds it (a lock that names its holder); a
directory that holds a run is never trained into afresh (resume=auto continues it); temporary
files left by killed writes are removed when the directory is taken."""
import fcntl
import glob
import os
import socket
import time

LOCK_FILE = ".lock"


class RunDir:
    def __init__(self, exp_path):
        self.path = exp_path
        self.snapshot = os.path.join(exp_path, "snapshot")
        self.result = os.path.join(exp_path, "result")
        self._lock = None

    @property
    def last(self):
        return os.path.join(self.snapshot, "last.pth")

    @property
    def best(self):
        return os.path.join(self.snapshot, "best.pth")

    def acquire(self):
        """Take the directory for this process, or raise one line naming who holds it."""
        os.makedirs(self.path, exist_ok=True)
        path = os.path.join(self.path, LOCK_FILE)
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ValueError(f"{self.path} is in use by {holder}; wait for it to end, or train "
                             "into another exp_dir / exp_name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._lock = handle
        self.remove_temporaries()

    def release(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def remove_temporaries(self):
        """Delete the `.tmp-*` files of writes that were killed (the lock holder writes alone)."""
        for folder in (self.snapshot, self.result):
            for path in glob.glob(os.path.join(folder, ".tmp-*")):
                os.unlink(path)

    def check_fresh(self):
        """A fresh run needs a directory without checkpoints."""
        if os.path.isfile(self.last):
            raise ValueError(f"{self.path} already holds a run ({self.last}); resume=auto continues "
                             "it, another exp_name or exp_dir starts a new one")


def stamped(folder, stem, ext):
    """folder/<stem>-<YYYYmmdd-HHMMSS>.<ext> (-2, -3 ... when taken): one file per run or test,
    never overwritten."""
    base = os.path.join(folder, f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = f"{base}.{ext}", 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}.{ext}"
    return path
