"""What the benchmarks share: interleaved timing, per-round ratios, memory, CPU threads.

Configurations run interleaved (one call of each per round) and ratios are medians of
per-round ratios, so slow stretches of a shared machine hit every configuration alike.
Memory: on CUDA the peak allocated during one call (above what was allocated before it); on
the CPU the bytes of the distinct tensors autograd saves for the backward (activations only,
parameters excluded), since the CPU allocator keeps no peak.
"""
import statistics
import time

import torch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(jobs, device, warmup, repeats):
    """jobs: {name: fn()} -> {name: [seconds per round]}."""
    for _ in range(warmup):
        for fn in jobs.values():
            fn()
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(times, numerator, denominator):
    """Median over rounds of the per-round time ratio (robust to drifting machine load)."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def median_ms(times, name):
    return statistics.median(times[name]) * 1e3


def saved_tensor_bytes(fn, parameters):
    """Bytes of the distinct storages autograd saves while fn() runs, `parameters` excluded."""
    excluded = {p.untyped_storage().data_ptr() for p in parameters}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in excluded:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        kept = fn()
    del kept
    return sum(seen.values())


def cuda_peak_bytes(fn, device):
    """Peak CUDA memory allocated while fn() runs, above what was allocated before."""
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def run_with_threads(run_fn, args):
    """run_fn(args, device) with torch's CPU threads set to --threads (restored afterwards)."""
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        run_fn(args, torch.device(args.device))
    finally:
        torch.set_num_threads(previous_threads)
