"""Throughput of the demo world's procedural face renderer (`data_tools.faces.render_faces`).

Renders batches of random faces (identities and looks sampled as in training) and prints images per minute
at each size.

    .venv/bin/python bench/render_faces.py [--threads 1] [--batch 500] [--repeats 3] [--sizes 64,128]
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=500, help="faces per render call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per size (the median is printed)")
    parser.add_argument("--sizes", default="64,128", help="comma-separated image sizes in pixels")
    args = parser.parse_args()

    import torch

    from data_tools.faces import render_faces, sample_identities, sample_looks

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    identities, looks = sample_identities(args.batch, generator=gen), sample_looks(args.batch, gen)
    for size in (int(s) for s in args.sizes.split(",")):
        render_faces(identities[:8], looks[:8], size=size)  # warm-up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            render_faces(identities, looks, size=size)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(f"{size} px: {args.batch} faces in {median:.2f} s (median of {args.repeats}) = "
              f"{args.batch / median * 60:,.0f} faces per minute, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
