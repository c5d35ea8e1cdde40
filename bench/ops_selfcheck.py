"""Time the stylegan_ops self-check: what it adds to the first load of a build, and to later loads and calls.

    .venv/bin/python bench/ops_selfcheck.py                  # CPU: the reference stands in for the kernels
    .venv/bin/python bench/ops_selfcheck.py --device cuda    # a GPU: the compiled kernels (built on first use)

Three figures, each the median (and max) over `--repeat` runs:
- first load: `selfcheck.verdict_for` with no stored verdict (a fresh build): run every case, store
  the verdict (target: at most 2 s). Timed in a fresh process each time, as on first use, so it
  includes torch's one-time set-up of the ops the check runs; also timed again in one warm process;
- later load: a new process's first `verdict_for` with the verdict stored (reads the JSON file);
- per call: the verdict lookup once the verdict is in memory, which every op call on the kernel path
  pays, beside the whole of `impl.cuda_plugin` (choosing the implementation) for scale.
Each run uses its own temporary build directory, so the real ops cache is left alone. Writes
`--out` (default results/ops_selfcheck.json, or results/ops_selfcheck_cuda.json with --device cuda).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from stylegan_ops import build, impl, selfcheck
from stylegan_ops.reference_kernels import ReferenceKernels

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def forget_verdicts() -> None:
    """What a new process starts with: no verdict in memory, nothing warned."""
    selfcheck._verdicts.clear()
    selfcheck._warned.clear()


def summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "max": max(times), "runs": len(times)}


def per_call_seconds(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def kernels_for(device: torch.device):
    """(extension or stand-in, what it is) for `device`."""
    if device.type == "cuda":
        return build.load_plugin(device), "the compiled extension"
    impl._KERNEL_DEVICE = device.type  # let CPU tensors take the kernel path, as CUDA tensors do
    return ReferenceKernels, "ReferenceKernels (the pure-PyTorch reference standing in for the kernels)"


def first_load_here(device: torch.device, build_dir: Path) -> float:
    """Seconds of the first `verdict_for` of a fresh build in this process."""
    kernels, _ = kernels_for(device)
    result = build.BuildResult(kernels, build_dir, ("bench",), 0.0, compiled=True)
    result.build_dir.mkdir()
    forget_verdicts()
    start = time.perf_counter()
    selfcheck.verdict_for(result, device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (reference stand-in) or cuda (compiled kernels)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument("--calls", type=int, default=10_000, help="op calls timed for the per-call figure")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--one-cold", type=Path, help=argparse.SUPPRESS)  # internal: one first load, print seconds
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is visible to torch")
        device = torch.device("cuda", torch.cuda.current_device())
    if args.one_cold:
        print(first_load_here(device, args.one_cold))
        return
    kernels, what = kernels_for(device)
    out = args.out or ROOT / "results" / ("ops_selfcheck_cuda.json" if device.type == "cuda" else "ops_selfcheck.json")

    cold, warm, later = [], [], []
    x = torch.zeros(1, 1, 4, 4, device=device)
    with tempfile.TemporaryDirectory(prefix="ops-selfcheck-") as temp:
        for run in range(args.repeat):
            # A fresh process (torch imported, the device initialised, no op run yet), as on first use.
            command = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                       "--one-cold", str(Path(temp) / f"cold{run}")]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
            cold.append(float(done.stdout.strip().splitlines()[-1]))
        first_load_here(device, Path(temp) / "warm-up")  # torch's one-time set-up, untimed
        for run in range(args.repeat):
            warm.append(first_load_here(device, Path(temp) / f"warm{run}"))
            result = build.BuildResult(kernels, Path(temp) / f"warm{run}", ("bench",), 0.0, compiled=True)
            forget_verdicts()
            start = time.perf_counter()
            verdict = selfcheck.verdict_for(result, device)
            later.append(time.perf_counter() - start)
        comparisons = len(verdict.cases)
        failed = [c.describe() for c in verdict.cases if not c.ok]
        build._loaded = result  # so that impl finds this build without loading anything
        impl.cuda_plugin("auto", x, "upfirdn2d")
        per_call = [per_call_seconds(lambda: impl.cuda_plugin("auto", x, "upfirdn2d"), args.calls)
                    for _ in range(args.repeat)]
        per_call_lookup = [per_call_seconds(lambda: selfcheck.verdict_for(result, x.device), args.calls)
                           for _ in range(args.repeat)]

    record = {
        "command": " ".join(["python bench/ops_selfcheck.py", *sys.argv[1:]]),
        "device": str(device),
        "device_name": selfcheck.device_description(device) if device.type == "cuda" else cpu_name(),
        "kernels": what,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "comparisons": comparisons,
        "failed": failed,
        "first_load_s": summary(cold),
        "first_load_warm_s": summary(warm),
        "later_load_s": summary(later),
        "per_call_dispatch_s": summary(per_call),
        "per_call_verdict_lookup_s": summary(per_call_lookup),
        "target_first_load_s": TARGET_S,
        "within_target": max(cold) <= TARGET_S,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"self-check on {record['device_name']} with {what}: {comparisons} comparisons"
          + (f", {len(failed)} FAILED" if failed else ", all passed"))
    print(f"  first load (check + store) in a fresh process: median {statistics.median(cold):.3f} s, "
          f"max {max(cold):.3f} s (target <= {TARGET_S:.0f} s); once torch is warm: {statistics.median(warm):.3f} s")
    print(f"  later load (read the stored verdict): median {statistics.median(later) * 1e3:.2f} ms")
    print(f"  per op call afterwards: the verdict lookup {statistics.median(per_call_lookup) * 1e6:.2f} us "
          f"of the {statistics.median(per_call) * 1e6:.2f} us that choosing the implementation takes")
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
