"""Per-turn plots of an editing run (matplotlib, PNG): one figure per metric, one line per mode.

A metric's value of a turn is read from the turn record's field of that name or from its `extra` dict
(booleans count as 0/1, so a success flag becomes a rate); the plot shows, for each turn index, the mean
over the dialogues that have a value there. `original_<metric>` values in `extra` (e.g. the original
photo's distance to the true target) are drawn as a dashed grey reference line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

# Metric key -> (title, y-axis label); the fixed part of the report's plots, in this order.
PLOTTED_METRICS: dict[str, tuple[str, str]] = {
    "success": ("Success (every requested value found)", "rate"),
    "marginal_success": ("Marginal success (values added this turn found)", "rate"),
    "avg_rel": ("AvgRel (mean CLIP cosine over requested values)", "cosine"),
    "min_rel": ("MinRel (lowest CLIP cosine over requested values)", "cosine"),
    "identity": ("Identity (cosine to the original)", "cosine"),
}
TARGET_PREFIX = "target_"  # numeric `extra` fields named target_* are distances to a known true target
MODE_STYLES = {"multi": ("#1f5fa8", "o", "multi-turn"), "single": ("#d9730d", "s", "single-turn")}


@dataclass
class Plot:
    """One written plot: `metric` key, `title`, `file` (path relative to the report folder)."""

    metric: str
    title: str
    file: str


def metric_value(record: Any, key: str) -> float | None:
    """The record's value of `key` (a field, else an `extra` entry) as a float; None when absent or not a number."""
    value = getattr(record, key, None) if key != "extra" else None
    if value is None:
        value = record.extra.get(key)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


def target_metrics(records: Iterable[Any]) -> list[str]:
    """Numeric `extra` keys named `target_*` that some record has, sorted."""
    keys = {k for r in records for k, v in r.extra.items()
            if k.startswith(TARGET_PREFIX) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(keys)


def by_turn(records: Sequence[Any], key: str, mode: str | None) -> tuple[list[int], list[float], list[int]]:
    """(turns, mean value per turn, count per turn) of `key` over the records of `mode` (None: all modes)."""
    sums: dict[int, list[float]] = {}
    for r in records:
        if mode is not None and r.mode != mode:
            continue
        value = metric_value(r, key)
        if value is not None:
            sums.setdefault(r.turn, []).append(value)
    turns = sorted(sums)
    return turns, [sum(sums[t]) / len(sums[t]) for t in turns], [len(sums[t]) for t in turns]


def write_plots(records: Sequence[Any], modes: Sequence[str], out_dir: Path, relative_to: Path
                ) -> tuple[list[Plot], list[str]]:
    """Write `<metric>.png` into `out_dir` for every metric that some record has.

    Returns the plots and the keys of `PLOTTED_METRICS` that no record has (not measured in this run).
    """
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    plots, missing = [], []
    wanted = {**PLOTTED_METRICS, **{k: (f"Distance to the true target ({k[len(TARGET_PREFIX):]})", "distance")
                                    for k in target_metrics(records)}}
    last_turn = max((r.turn for r in records), default=1)
    for key, (title, unit) in wanted.items():
        lines = {mode: by_turn(records, key, mode) for mode in modes}
        if not any(turns for turns, _, _ in lines.values()):
            missing.append(key)
            continue
        figure = Figure(figsize=(4.2, 3.0), dpi=100, layout="constrained")
        axes = figure.subplots()
        for mode, (turns, means, counts) in lines.items():
            colour, marker, label = MODE_STYLES.get(mode, ("#444444", "^", mode))
            if turns:
                axes.plot(turns, means, marker=marker, color=colour, label=f"{label} (n={min(counts)}–{max(counts)})"
                          if min(counts) != max(counts) else f"{label} (n={counts[0]})")
        reference = by_turn(records, f"original_{key}", None)
        if reference[0]:
            axes.plot(reference[0], reference[1], linestyle="--", color="#888888", label="original photo")
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("turn")
        axes.set_ylabel(unit)
        axes.set_xticks(range(1, last_turn + 1))
        if unit == "rate":
            axes.set_ylim(-0.03, 1.03)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        path = out_dir / f"{key}.png"
        figure.savefig(path)
        plots.append(Plot(metric=key, title=title, file=path.relative_to(relative_to).as_posix()))
    return plots, missing
