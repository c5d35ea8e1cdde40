"""`i2edit ops build`: compile the CUDA ops now instead of on first use."""
from __future__ import annotations

import argparse


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
