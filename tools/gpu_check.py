"""python -m tools.gpu_check (make gpu-check): the CUDA paths end to end, on a machine with a GPU.

Without CUDA it prints one line and exits 0 without running anything. With CUDA it prepares a
temporary workspace (synthetic VOC data sized for the crops, a random-init backbone, a random
PSPNet as BAM's base learner) and runs the project's own commands, through
tools.measured_run (optimizer steps per second, peak GPU memory):

  0. pytest tests/cuda (AMP fp16 + GradScaler, bf16, SVD layers on CUDA, cudnn.benchmark,
     pinned memory, NCCL)
  for every arch of model.registry.ARCHS that trains on episodes, svf on resnet50 at --size
  and --batch:
  1. train.py with amp off, bf16 and fp16 (one short epoch each)
  2. fp16 over two epochs, and the same crashed after epoch 1 and resumed (resume=auto): the
     counters and the GradScaler state must be equal, the weights equal up to the GPU's
     non-deterministic kernels (difference below 5 % of the second epoch's change)
  3. train.py under torchrun, one process
  4. test.py at batch_size_val 1 and 16: the same mIoU and FB-IoU (within 1e-3), images/s
  then python -m tools.bench_svf, tools.bench_svf_layers, tools.bench_train and tools.bench_eft
  (test-time adaptation against the plain test, msanet at 473) on the device.

It prints a table and exits 1 if any step failed, naming each failed step (its log is in the
workspace, which is then kept). --device cpu runs the same plumbing on the CPU at small sizes
(the AMP steps are skipped there): a dry run for development.
"""
import os
import shutil
import sys
import tempfile

import torch

from tools import gpu_check_steps as steps
from tools.measured_run import CRASH_EXIT
from util.cli import command_parser, run_main

RESUME_TOLERANCE = 0.05
BATCH_TOLERANCE = 1e-3


class Check:
    """Runs named steps, keeps their table rows, failures and skips."""

    def __init__(self):
        self.rows, self.failures, self.lines = [], [], []

    def step(self, name, fn, *needs):
        """fn() unless a step it needs failed; returns its result or None."""
        if any(n is None for n in needs):
            self.failures.append(f"{name}: not run (an earlier step it needs failed)")
            return None
        print(f"gpu-check: {name} ...", flush=True)
        try:
            return fn()
        except (steps.StepFailed, OSError, ValueError, RuntimeError) as err:
            self.failures.append(f"{name}: {err}")
            return None

    def row(self, arch, run, rate=None, memory=None, note=""):
        self.rows.append((arch, run, rate, memory, note))

    def table(self):
        def fmt(value, spec):
            return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)
        out = [f"{'arch':<10} {'run':<22} {'rate':>11} {'peak MB':>9}  notes"]
        for arch, run, rate, memory, note in self.rows:
            out.append(f"{arch:<10} {run:<22} {fmt(rate, '11.2f')} {fmt(memory, '9.0f')}  {note}")
        return "\n".join(out + self.lines)


def measured_step(check, arch, run, command):
    """A training step whose tools.measured_run line becomes a row (iterations/s, peak MB)."""
    m = check.step(f"{arch}: {run}", lambda: steps.parse_measured(command()))
    if m is not None:
        check.row(arch, run, m.get("iterations_per_second"), m.get("peak_allocated_mb"), "it/s")
    return m


def check_arch(check, arch, config, work, args):
    """Steps 1-4 for one arch."""
    cuda = args.device == "cuda"
    exp, log = os.path.join(work, "exp", arch), os.path.join(work, "logs", arch)

    def train(run, overrides=(), expect=0, env=None, log_name=None, **kw):
        cmd = steps.train_command(config, arch, os.path.join(exp, run), overrides, **kw)
        return lambda: steps.run_command(cmd, f"{log}/{log_name or run}.log", env, expect)

    trained = None
    for amp in ("off", "bf16", "fp16") if cuda else ("off",):
        if measured_step(check, arch, f"train amp={amp}", train(f"amp_{amp}", [f"amp={amp}"])):
            trained = trained or os.path.join(exp, f"amp_{amp}")
    check_resume(check, arch, exp, train, "fp16" if cuda else "off")
    measured_step(check, arch, "torchrun 1 process", train("torchrun", torchrun=True))
    weight = check.step(f"{arch}: trained checkpoint", lambda: steps.snapshot(trained, "best.pth"),
                        trained)
    check_test(check, arch, config, exp, log, weight)


def check_resume(check, arch, exp, train, amp):
    """Two epochs in one go against a crash after epoch 1 and resume=auto."""
    two = ["epochs=2", f"amp={amp}", "deterministic=true"]
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # deterministic cuBLAS
    whole = check.step(f"{arch}: {amp} 2 epochs", train("whole", two, env=env))
    crashed = check.step(f"{arch}: {amp} crash after epoch 1",
                         train("resumed", two, CRASH_EXIT, env, "crashed", crash_after=1))
    first = check.step(f"{arch}: checkpoint after epoch 1", lambda: shutil.copy(
        steps.snapshot(f"{exp}/resumed", "last.pth"), f"{exp}/after_epoch_1.pth"), crashed)
    resumed = check.step(f"{arch}: {amp} resume", train("resumed", two + ["resume=auto"],
                                                        env=env), first)
    diff = check.step(f"{arch}: resume equals uninterrupted", lambda: steps.resume_difference(
        steps.snapshot(f"{exp}/whole", "last.pth"), steps.snapshot(f"{exp}/resumed", "last.pth"),
        first), whole, resumed)
    if diff is not None:
        check.row(arch, f"{amp} resumed", note=f"weights differ by {diff:.1e} of the second "
                  f"epoch's change (limit {RESUME_TOLERANCE}); counters, GradScaler equal")
        if diff > RESUME_TOLERANCE:
            check.failures.append(f"{arch}: resume equals uninterrupted: difference {diff:.3g}")


def check_test(check, arch, config, exp, log, weight):
    """test.py at batch_size_val 1 and 16: same scores, images per second."""
    results = {}
    for b in (1, 16):
        run = os.path.join(exp, f"test_b{b}")
        cmd = steps.test_command(config, arch, run, weight, b) + ["test_num=64"]
        result = check.step(f"{arch}: test batch_size_val={b}", lambda cmd=cmd, b=b, run=run: (
            steps.run_command(cmd, f"{log}/test_b{b}.log") and steps.test_result(run)), weight)
        if result is not None:
            results[b] = result
            check.row(arch, f"test batch {b}", result[2], note=f"img/s, mIoU {result[0]:.4f} "
                      f"FB-IoU {result[1]:.4f}")
    if len(results) == 2:
        gap = max(abs(results[1][0] - results[16][0]), abs(results[1][1] - results[16][1]))
        check.row(arch, "test 16 vs 1", results[16][2] / results[1][2],
                  note=f"x the images/s; scores differ by {gap:.1e} (limit {BATCH_TOLERANCE})")
        if gap > BATCH_TOLERANCE:
            check.failures.append(f"{arch}: test batch 16 equals batch 1: scores differ by {gap:.3g}")


def summary_lines(output, tool):
    """The lines of a benchmark's output that go under the table."""
    lines = output.strip().splitlines()
    if tool == "bench_train":
        return [line for line in lines if line.startswith("ratios ")]
    return [f"{tool}: {lines[-1]}"]


def check_benchmarks(check, work, args, archs):
    """The benchmarks on the device (tiny sizes on the CPU); their ratio lines."""
    tiny = {"bench_svf": ["--size", "65", "--repeats", "1", "--warmup", "0"],
            "bench_svf_layers": ["--size", "33", "--repeats", "1"],
            "bench_train": ["--size", "33", "--batch", "1", "--repeats", "1", "--warmup", "0",
                            "--candidates", "frozen_bn_affine"],
            "bench_eft": ["--arch", "bam", "--mode", "freeze", "--size", "33", "--episodes", "1",
                          "--repeats", "1", "--warmup", "0"]}
    for tool, small in tiny.items():
        cmd = [sys.executable, "-m", f"tools.{tool}", "--device", args.device]
        cmd += (["--archs"] + archs if tool == "bench_train" else [])
        cmd += small if args.device == "cpu" else []
        out = check.step(tool, lambda cmd=cmd, tool=tool: steps.run_command(
            cmd, os.path.join(work, "logs", f"{tool}.log")))
        if out is not None:
            check.lines += summary_lines(out, tool)


def main(argv=None):
    parser = command_parser("tools.gpu_check", __doc__)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--archs", nargs="+", help="default: every arch that trains on episodes")
    parser.add_argument("--size", type=int, default=None, help="crop; default 473 (cpu 65)")
    parser.add_argument("--batch", type=int, default=None, help="default 8 (cpu 2)")
    parser.add_argument("--iterations", type=int, default=12, help="per training epoch")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device visible to torch {torch.__version__}; nothing run")
        return 0
    cuda = args.device == "cuda"
    args.size = args.size or (473 if cuda else 65)
    args.batch = args.batch or (8 if cuda else 2)
    work = tempfile.mkdtemp(prefix="gpu_check_")
    check = Check()
    config = check.step("workspace", lambda: steps.write_workspace(
        work, args.device, args.size, args.batch, args.iterations, args.workers))
    archs = config and (args.archs or check.step("archs", steps.episode_archs))
    check.step("cuda tests", lambda: steps.run_command(
        [sys.executable, "-m", "pytest", "-q", "-rs", "tests/cuda"], f"{work}/logs/pytest.log"))
    for arch in archs or []:
        check_arch(check, arch, config, work, args)
    check_benchmarks(check, work, args, archs or ["baseline"])
    device = torch.cuda.get_device_name() if cuda else "cpu (dry run)"
    print(f"\ngpu-check on {device}, torch {torch.__version__}: resnet50 svf, {args.size} px, "
          f"batch {args.batch}\n{check.table()}")
    if check.failures:
        print(f"gpu-check: FAILED ({len(check.failures)}); workspace kept: {work}")
        for failure in check.failures:
            print(f"  {failure}")
        return 1
    print("gpu-check: every step passed")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
