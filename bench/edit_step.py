"""Time of one StyleCLIP optimisation step and of a full 300-step edit turn, with peak memory.

Networks at their real sizes with random weights (speed does not depend on the weights): StyleGAN2
config-f (channel multiplier 2) at each requested resolution, CLIP ViT-B/32 (QuickGELU), ArcFace
IR-SE50. A turn is what `Editor.edit` does: identity embedding of the anchor image, N optimiser steps
(render, CLIP + L2 + ID losses, backward, Adam), the final render, and the metrics (AvgRel/MinRel and
identity).

    .venv/bin/python bench/edit_step.py [--sizes 256,1024] [--device auto] [--steps 300] [--fast] [--threads N]

Each configuration runs in a fresh subprocess so that its peak memory is its own: on CUDA
`torch.cuda.max_memory_allocated`, on the CPU the process's peak resident set size (which also
counts the Python interpreter and the networks' weights). When fewer than 300 steps are timed
(`--steps`), the full-turn figure is extrapolated — setup + first step + 299 x the median later step
+ final render and metrics — and the output says so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_TURN = 300
ANCHORS = ("StyleCLIP latent optimisation: ~98 s per edit (paper-era figure, unverified)",
           "project goal: <= 10 s per turn at 1024 px on one H100 with the paper's settings")


def build(size: int, device: str):
    """Generator (config-f channels), ClipScorer (ViT-B-32-quickgelu) and IR-SE50 IdentityNet, random."""
    import open_clip
    import torch

    from editing.networks.checkpoints import freeze
    from editing.networks.clip_model import ClipScorer
    from editing.networks.generator import Generator
    from editing.networks.identity import Backbone, IdentityNet

    torch.manual_seed(0)
    generator = freeze(Generator(size, 512, 8, channel_multiplier=2), device)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    clip = freeze(ClipScorer(model, open_clip.SimpleTokenizer(), 224, 512), device)
    identity = freeze(IdentityNet(Backbone(), 112, "arcface"), device)
    return generator, clip, identity


def run_one(size: int, device: str, steps: int, fast: bool, threads: int | None, fast_size: int = 256) -> dict:
    """Time one turn in this process; returns a JSON-able record."""
    import resource

    import torch

    from dialogue.ontology import BeliefState
    from editing.pipeline.metrics import identity_similarity, relevance
    from editing.pipeline.optimizer import OptimizerSettings, optimize_latent
    from editing.pipeline.prompts import description

    if threads:
        torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    generator, clip, identity = build(size, device)
    state = BeliefState.of("smiling", "black hair", "lipstick")
    with torch.no_grad():
        w_s = generator.mapping(torch.randn(1, 512, device=device)).unsqueeze(1).repeat(1, generator.n_latent, 1)
        original = generator.synthesis(w_s)
    settings = OptimizerSettings(steps=steps, clip_size=fast_size if fast and size > fast_size else None)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    stamps: list[float] = []
    cpu_stamps: list[float] = []

    def progress(step, total, losses, preview):
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    started = time.perf_counter()
    result = optimize_latent(generator, clip, description(state), w_s, w_s, identity, settings, progress)
    optimised = time.perf_counter()
    relevance(clip, result.image, state)
    identity_similarity(identity, result.image, original)
    if cuda:
        torch.cuda.synchronize()
    finished = time.perf_counter()

    later = [b - a for a, b in zip(stamps, stamps[1:])]
    step = statistics.median(later) if later else stamps[0] - started
    step_cpu = statistics.median(b - a for a, b in zip(cpu_stamps, cpu_stamps[1:])) if later else None
    setup_and_first = stamps[0] - started
    tail = (optimised - stamps[-1]) + (finished - optimised)
    measured_turn = finished - started
    full_turn = measured_turn if steps == FULL_TURN else setup_and_first + (FULL_TURN - 1) * step + tail
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "torch.cuda.max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "peak RSS of the process"
    return {
        "size": size, "device": device, "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "threads": torch.get_num_threads(), "fast": settings.clip_size is not None, "steps_timed": steps,
        "step_s": step, "step_cpu_s": step_cpu, "first_step_s": setup_and_first, "final_render_and_metrics_s": tail,
        "measured_s": measured_turn, "turn_300_s": full_turn, "extrapolated": steps != FULL_TURN,
        "peak_mib": peak, "peak_kind": peak_kind, "torch": torch.__version__,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="generator resolutions, comma-separated")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to time (default: 300 on CUDA, 5 on the CPU; fewer than 300 extrapolates)")
    parser.add_argument("--fast", action="store_true", help="also time the fast mode (losses at 256 px)")
    parser.add_argument("--fast-size", type=int, default=256,
                        help="the size the fast mode's losses see (default 256; smaller for tiny dry runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: time one size here
    parser.add_argument("--one-fast", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from dialogue.device import resolve_device

    device = str(resolve_device(args.device))
    steps = args.steps or (FULL_TURN if device.startswith("cuda") else 5)
    if steps < 2:
        parser.error("--steps must be at least 2 (the first step includes warm-up)")
    if args.one:
        print(json.dumps(run_one(args.one, device, steps, args.one_fast, args.threads, args.fast_size)))
        return

    configs = [(int(s), False) for s in args.sizes.split(",")]
    if args.fast:
        configs += [(size, True) for size, _ in configs if size > args.fast_size]
    records = []
    for size, fast in configs:
        command = [sys.executable, __file__, "--one", str(size), "--device", device, "--steps", str(steps),
                   "--fast-size", str(args.fast_size)]
        if fast:
            command.append("--one-fast")
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(f"{size} px{' fast' if fast else ''}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(records, indent=2))
        return
    for r in records:
        label = f"{r['size']:>4} px{f' fast (losses at {args.fast_size} px)' if r['fast'] else ''}"
        how = (f"extrapolated from {r['steps_timed']} timed steps" if r["extrapolated"]
               else "measured (300 steps)")
        print(f"{label} on {r['device']} ({r['device_name']}, {r['threads']} threads, torch {r['torch']}):")
        cpu = "" if r["device"].startswith("cuda") else f", {r['step_cpu_s']:.3f} s of process CPU time"
        print(f"    one step {r['step_s']:.3f} s wall{cpu} (median after the first; first step incl. setup "
              f"{r['first_step_s']:.2f} s)")
        print(f"    full 300-step turn {r['turn_300_s']:.1f} s, {how}")
        print(f"    peak memory {r['peak_mib']:.0f} MiB ({r['peak_kind']})")
    print("anchors: " + "; ".join(ANCHORS))


if __name__ == "__main__":
    main()
