"""`i2edit ops build`: compile the CUDA ops now instead of on first use; `i2edit ops check`: the
self-check verdict of the compiled kernels on this GPU, and its cases."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stylegan_ops.selfcheck import Verdict


def register(subparsers: argparse._SubParsersAction) -> None:
    ops = subparsers.add_parser("ops", help="StyleGAN2 custom CUDA ops")
    commands = ops.add_subparsers(dest="ops_command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build",
        help="compile the CUDA extension into the cache (needs nvcc and a CUDA build of torch, not a GPU)",
        description=(
            "Compile fused_bias_act and upfirdn2d for the GPU architectures in TORCH_CUDA_ARCH_LIST "
            "(e.g. '8.6' or '8.0;9.0'), or when unset for every architecture this torch was built for that "
            "the installed nvcc supports. The build is cached (I2EDIT_OPS_CACHE, default "
            "~/.cache/i2edit/stylegan_ops) and reused by later runs on a GPU it covers."
        ),
    )
    build.add_argument("--verbose", dest="show_compiler", action="store_true", help="show the compiler commands and output")
    build.set_defaults(func=_build)
    check = commands.add_parser(
        "check",
        help="print the self-check verdict of the compiled kernels on this GPU (exit 1 when an op failed)",
        description=(
            "Load the CUDA ops for the current GPU (building them if needed) and print their self-check "
            "against the pure-PyTorch reference: per op passed or failed, and every case with its error and "
            "tolerance. The verdict is stored beside the build and made once per build and GPU architecture; "
            "--rerun checks again. An op that failed runs the reference under impl='auto'."
        ),
    )
    check.add_argument("--rerun", action="store_true", help="check again instead of reading the stored verdict")
    check.set_defaults(func=_check)


def _build(args: argparse.Namespace) -> int:
    from stylegan_ops import build

    archs = build.default_archs()
    print(f"building the CUDA ops for {';'.join(archs)} (a few minutes the first time)...", flush=True)
    result = build.build(archs, verbose=args.show_compiler)
    if result.compiled:
        print(f"built in {result.seconds:.1f} s")
    else:
        print(f"up to date: reused the earlier build ({result.seconds:.1f} s to check and load)")
    print(f"cache: {result.build_dir}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from stylegan_ops import build, impl, selfcheck

    device = impl.kernel_device()
    print("loading the CUDA ops (built on first use: minutes)...", flush=True)
    result = build.load_build(device)
    verdict = selfcheck.verdict_for(result, device, rerun=args.rerun)
    print(format_verdict(verdict, result.build_dir))
    return 0 if all(verdict.ok(op) for op in selfcheck.OPS) else 1


def format_verdict(verdict: Verdict, build_dir: Path) -> str:
    """The verdict as text: the build, the device, per op passed/FAILED, then one line per case."""
    from stylegan_ops import selfcheck

    lines = [
        f"build:   {build_dir}",
        f"device:  {verdict.device}",
        f"checked: {verdict.checked_at} in {verdict.seconds:.2f} s; stored in {verdict.path or '(not stored)'}",
        "verdict: " + ", ".join(f"{op} {'passed' if verdict.ok(op) else 'FAILED'}" for op in selfcheck.OPS),
        "",
        f"{'op':<15} {'case':<70} {'check':<13} {'|error|':>9} {'allowed':>9}  result",
    ]
    for c in verdict.cases:
        if c.error is not None:
            lines.append(f"{c.op:<15} {c.case:<70} {c.check:<13} {'-':>9} {'-':>9}  FAILED: {c.error}")
        else:
            lines.append(f"{c.op:<15} {c.case:<70} {c.check:<13} {c.max_error:9.1e} {c.allowed:9.1e}  "
                         f"{'ok' if c.ok else 'FAILED'}")
    return "\n".join(lines)
