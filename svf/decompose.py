"""Exact per-group SVD of a dense weight, and the rank rule."""
import contextlib
import math

import torch


def check_ratio(ratio, what="global_low_rank_ratio"):
    """A rank ratio must be a number in (0, 1]."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"{what} must be a number in (0, 1], got {ratio!r}")
    return float(ratio)


def rank_from_ratio(full_rank, ratio):
    """round(ratio x full_rank), halves rounded up, at least 1; no rounding to multiples."""
    return max(1, min(full_rank, math.floor(check_ratio(ratio, "rank ratio") * full_rank + 0.5)))


def decompose(weight, groups=1, rank=None):
    """Split `weight` ([out, in/groups, *kernel] or [out, in]) into per-group factors.

    Each group's block W_g ([out/groups, in/groups * prod(kernel)]) is decomposed as
    U_g diag(S_g) V_g^T in float64 on the weight's device; the factors are returned in the
    weight's dtype with shapes U [groups, out/groups, r], S [groups, r],
    V [groups, r, in/groups * prod(kernel)]. rank=None keeps the full rank.
    """
    out = weight.shape[0]
    if out % groups:
        raise ValueError(f"out channels {out} not divisible by groups {groups}")
    blocks = weight.detach().reshape(groups, out // groups, -1).to(torch.float64)
    full_rank = min(blocks.shape[1], blocks.shape[2])
    rank = full_rank if rank is None else int(rank)
    if not 1 <= rank <= full_rank:
        raise ValueError(f"rank must be in [1, {full_rank}] for weight {tuple(weight.shape)}, "
                         f"got {rank}")
    with single_cpu_thread(blocks.device):
        u, s, vh = _thin_svd(blocks)
    dtype = weight.dtype
    return (u[:, :, :rank].to(dtype).contiguous(), s[:, :rank].to(dtype).contiguous(),
            vh[:, :rank, :].to(dtype).contiguous())


def _thin_svd(blocks):
    """Batched thin SVD; a non-square block is first reduced to its square QR factor R, whose
    SVD is 2-3x cheaper than LAPACK's on the whole block (Householder QR is backward stable,
    so nothing is lost in float64)."""
    rows, cols = blocks.shape[-2:]
    if rows > cols:
        q, r = torch.linalg.qr(blocks)
        u, s, vh = torch.linalg.svd(r)
        return q @ u, s, vh
    if rows < cols:
        q, r = torch.linalg.qr(blocks.mT)
        u, s, vh = torch.linalg.svd(r.mT)
        return u, s, vh @ q.mT
    return torch.linalg.svd(blocks)


@contextlib.contextmanager
def single_cpu_thread(device):
    """Run CPU LAPACK on one thread. Threading gains little on matrices this small, and under
    contention it collapses: a 512 x 4608 float64 SVD took 14 s with 2 threads and 0.7 s with
    one on the 2-core development machine while other jobs ran."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
