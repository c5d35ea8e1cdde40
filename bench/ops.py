"""Time the StyleGAN2 ops: the simple reference, the fast pure-PyTorch path and (on a GPU) CUDA.

    python bench/ops.py                      # CPU: simple vs fast upfirdn2d, reference bias_act
    python bench/ops.py --device cuda        # adds the CUDA kernels (builds them on first use)
    python bench/ops.py --backward           # time forward + backward instead of forward only
    python bench/ops.py --json FILE          # also write the figures as JSON (--tiny: small shapes, a dry run)

Prints one row per case with the median time of each path over `--repeat` runs (after one warm-up)
and the ratios, all measured in this one run. The cases are the generator's resampling steps at
generator-sized tensors: 2× upsampling with the 4-tap [1,3,3,1] filter (ToRGB skip `Upsample`),
the blur after the transposed conv, 2× downsampling (discriminator), and the biased leaky ReLU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from stylegan_ops import fused_bias_act, make_kernel
from stylegan_ops.build import OpsBuildError, load_plugin
from stylegan_ops.upfirdn2d_op import upfirdn2d
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_simple


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, int, int, int]
    up: int = 1
    down: int = 1
    pad: tuple[int, int] = (0, 0)
    gain: float = 1.0  # kernel scale (up² after zero insertion)


UPFIRDN_CASES = [
    Case("up2 4-tap", (4, 512, 64, 64), up=2, pad=(2, 1), gain=4.0),
    Case("up2 4-tap", (4, 64, 256, 256), up=2, pad=(2, 1), gain=4.0),
    Case("blur 4-tap", (4, 512, 129, 129), pad=(1, 1), gain=4.0),
    Case("blur 4-tap", (4, 64, 513, 513), pad=(1, 1), gain=4.0),
    Case("down2 4-tap", (4, 512, 64, 64), down=2, pad=(1, 1)),
    Case("down2 4-tap", (4, 64, 256, 256), down=2, pad=(1, 1)),
]
BIAS_ACT_SHAPES = [(4, 512, 64, 64), (4, 64, 256, 256)]
TINY_SHAPES = [(1, 8, 16, 16), (1, 4, 33, 33)]  # --tiny: the same cases on small tensors, to try the script


def median_seconds(fn: Callable[[], torch.Tensor], repeat: int, backward: bool, device: torch.device) -> float:
    def run():
        out = fn()
        if backward:
            out.backward(torch.ones_like(out))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run()  # warm-up (and, for CUDA, the lazy build)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt(seconds: float | None) -> str:
    """Milliseconds in a 9-wide column, '-' when not measured."""
    return f"{'-':>9}" if seconds is None else f"{seconds * 1e3:9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per path (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--skip-simple", action="store_true", help="skip the slow simple reference")
    parser.add_argument("--tiny", action="store_true", help="small shapes (a quick dry run of the script)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        try:
            load_plugin(device)
        except OpsBuildError as exc:
            parser.error(f"the CUDA ops do not build here: {exc}")
    mode = "forward+backward" if args.backward else "forward"
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if cuda else f", {torch.get_num_threads()} threads")
          + f", {mode}, median of {args.repeat} runs, times in ms")

    upfirdn_cases = UPFIRDN_CASES
    bias_act_shapes = BIAS_ACT_SHAPES
    if args.tiny:
        upfirdn_cases = [Case(c.name, TINY_SHAPES[i % 2], c.up, c.down, c.pad, c.gain)
                         for i, c in enumerate(UPFIRDN_CASES)]
        bias_act_shapes = TINY_SHAPES
    record = {"command": " ".join(["python bench/ops.py", *sys.argv[1:]]), "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
              "threads": torch.get_num_threads(), "mode": mode, "repeat": args.repeat, "torch": torch.__version__,
              "upfirdn2d": [], "fused_bias_act": []}

    print(f"\n{'upfirdn2d':<12} {'input':<20} {'simple':>9} {'fast':>9} {'cuda':>9}  {'simple/fast':>11}"
          f" {'fast/cuda':>9}")
    for case in upfirdn_cases:
        x = torch.randn(case.shape, device=device, requires_grad=args.backward)
        kernel = (make_kernel([1, 3, 3, 1]) * case.gain).to(device)
        params = UpFirDnParams.parse(case.up, case.down, case.pad)
        simple = None if args.skip_simple else median_seconds(
            lambda: upfirdn2d_simple(x, kernel, params), args.repeat, args.backward, device)
        fast = median_seconds(lambda: upfirdn2d(x, kernel, case.up, case.down, case.pad, impl="ref"),
                              args.repeat, args.backward, device)
        kernel_time = median_seconds(lambda: upfirdn2d(x, kernel, case.up, case.down, case.pad, impl="cuda"),
                                     args.repeat, args.backward, device) if cuda else None
        record["upfirdn2d"].append({"case": case.name, "shape": list(case.shape), "simple_s": simple, "fast_s": fast,
                                    "cuda_s": kernel_time})
        print(f"{case.name:<12} {str(list(case.shape)):<20} {fmt(simple)} {fmt(fast)} {fmt(kernel_time)}  "
              f"{(f'{simple / fast:10.2f}x' if simple else '-'):>11} "
              f"{(f'{fast / kernel_time:8.2f}x' if kernel_time else '-'):>9}")

    print(f"\n{'bias_act':<12} {'input':<20} {'ref':>9} {'cuda':>9}  {'ref/cuda':>9}")
    for shape in bias_act_shapes:
        x = torch.randn(shape, device=device, requires_grad=args.backward)
        bias = torch.randn(shape[1], device=device, requires_grad=args.backward)
        ref = median_seconds(lambda: fused_bias_act(x, bias, impl="ref"), args.repeat, args.backward, device)
        kernel_time = median_seconds(lambda: fused_bias_act(x, bias, impl="cuda"), args.repeat, args.backward,
                                     device) if cuda else None
        record["fused_bias_act"].append({"act": "lrelu", "shape": list(shape), "ref_s": ref, "cuda_s": kernel_time})
        print(f"{'lrelu':<12} {str(list(shape)):<20} {fmt(ref)} {fmt(kernel_time)}  "
              f"{(f'{ref / kernel_time:8.2f}x' if kernel_time else '-'):>9}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
