"""A resumable training loop shared by the demo-world networks.

State (modules, optimisers, step) is saved atomically to `RUN_DIR/state.pt` every `checkpoint_every` steps
and at the end; starting again with the same run directory resumes where it stopped. Each step draws its
batch from a generator seeded with (seed, step), so a resumed run sees exactly the batches an uninterrupted
run would have seen. Averaged losses go to `RUN_DIR/train.log` and the progress bar.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

StepFn = Callable[[int, torch.Generator], dict[str, float]]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The batch generator of `step` in a run seeded with `seed` (seeds stay below the held-out ones)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 1_000_000)


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_loop(
    name: str,
    run_dir: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    steps: int,
    step_fn: StepFn,
    seed: int,
    checkpoint_every: int = 100,
    log_every: int = 25,
    show_progress: bool = True,
    on_log: Callable[[int], dict[str, float]] | None = None,
) -> int:
    """Run `step_fn(step, generator)` for steps [resumed step, `steps`), checkpointing on the way.

    `on_log(step)` may return extra figures (e.g. held-out accuracy) written with the log line.
    Returns the number of steps run in this call.
    """
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"
    start = 0
    if state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        for key, module in modules.items():
            module.load_state_dict(saved["modules"][key])
        for key, opt in optimizers.items():
            opt.load_state_dict(saved["optimizers"][key])
        start = int(saved["step"])
        log.info("%s: resuming from step %d (%s)", name, start, state_path)
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    file_log = logging.getLogger(f"i2edit.demo_world.{name}")
    file_log.addHandler(handler)
    file_log.setLevel(logging.INFO)
    file_log.propagate = False

    def checkpoint(step: int) -> None:
        _save(state_path, {
            "step": step,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        })

    sums: dict[str, float] = defaultdict(float)
    count = 0
    started = time.perf_counter()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"train {name}", disable=not show_progress)
    try:
        for step in bar:
            for module in modules.values():
                module.train()
            losses = step_fn(step, step_generator(seed, step))
            for key, value in losses.items():
                sums[key] += value
            count += 1
            done = step + 1
            if done % log_every == 0 or done == steps:
                means = {k: v / count for k, v in sums.items()}
                if on_log is not None:
                    means.update(on_log(done))
                text = " ".join(f"{k} {v:.4f}" for k, v in means.items())
                file_log.info("step %d/%d %s (%.1f s)", done, steps, text, time.perf_counter() - started)
                bar.set_postfix_str(text[:80])
                sums.clear()
                count = 0
            if done % checkpoint_every == 0 or done == steps:
                checkpoint(done)
    finally:
        file_log.removeHandler(handler)
        handler.close()
        bar.close()
    return max(0, steps - start)


def load_run_modules(run_dir: Path, modules: dict[str, nn.Module]) -> int:
    """Load the modules' latest weights from `run_dir/state.pt`; returns the step they were saved at."""
    state_path = run_dir / "state.pt"
    if not state_path.is_file():
        raise FileNotFoundError(f"no training state in {run_dir} (expected {state_path}); train first")
    saved = torch.load(state_path, map_location="cpu", weights_only=False)
    for key, module in modules.items():
        module.load_state_dict(saved["modules"][key])
    return int(saved["step"])
