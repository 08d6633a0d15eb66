"""Run a function over many tasks in worker processes, with a progress bar on stderr."""
import multiprocessing
import os
import sys

from tqdm import tqdm


def map_with_progress(fn, tasks, workers, desc, chunksize=None, ordered=True, serial_below=1,
                      progress=True):
    """[fn(t) for t in tasks] over `workers` processes (None: all CPUs), in task order
    (ordered=False: in completion order, for results that are only counted). One process when
    workers <= 1 or there are fewer than `serial_below` tasks; progress=False hides the bar."""
    workers = all_cpus() if workers is None else int(workers)
    bar = dict(total=len(tasks), desc=desc, file=sys.stderr, leave=False, disable=not progress)
    if workers <= 1 or len(tasks) < serial_below:
        return [fn(t) for t in tqdm(tasks, **bar)]
    chunksize = chunksize or max(1, min(256, len(tasks) // (workers * 8)))
    with multiprocessing.Pool(workers) as pool:
        mapper = pool.imap if ordered else pool.imap_unordered
        return list(tqdm(mapper(fn, tasks, chunksize=chunksize), **bar))


def all_cpus():
    return os.cpu_count() or 1
