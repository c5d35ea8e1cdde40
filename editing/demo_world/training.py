"""One entry point per demo-world network, used by `i2edit demo-world train NETWORK`."""
from __future__ import annotations

from pathlib import Path

DEFAULT_STEPS = {"judge": 600, "generator": 16000, "clip": 7000, "identity": 600, "e4e": 5000}


def judge_path(runs_root: Path) -> Path:
    """The judge of the judge run under `runs_root` when there is one, else the shipped demo set's."""
    from editing.weights.weight_set import DEMO_SET_DIR

    trained = runs_root / "judge" / "judge.safetensors"
    return trained if trained.is_file() else DEMO_SET_DIR / "judge.safetensors"


def train_network(network: str, run_dir: Path, steps: int | None = None, runs_root: Path = Path("runs/demo_world2"),
                  init: Path | None = None, show_progress: bool = True) -> dict:
    """Train `network` in `run_dir` (resuming), then report held-out figures. Networks that build on
    others read those from `runs_root`: e4e and CLIP need the generator (they may start while it trains:
    they follow its newest weights); the held-out checks use the judge (`judge_path`). `init`: a demo
    weight-set directory to start from (generator, e4e, CLIP, identity; see each trainer)."""
    steps = steps or DEFAULT_STEPS[network]
    if network == "judge":
        from editing.demo_world.judge import judge_accuracy, save_judge, train_judge

        judge = train_judge(run_dir, steps=steps, show_progress=show_progress)
        save_judge(judge, run_dir / "judge.safetensors")
        accuracy = judge_accuracy(judge)
        worst = min(accuracy, key=accuracy.get)
        return {"mean held-out accuracy": round(sum(accuracy.values()) / len(accuracy), 4),
                "worst value": f"{worst} {accuracy[worst]:.4f}", "weights": run_dir / "judge.safetensors"}
    if network == "generator":
        from editing.demo_world.generator_train import generator_agreement, train_generator
        from editing.demo_world.judge import load_judge

        generator = train_generator(run_dir, steps=steps, init=init, show_progress=show_progress)
        return {**generator_agreement(generator, load_judge(judge_path(runs_root))), "run": run_dir}
    if network == "clip":
        from editing.demo_world.clip_train import train_clip

        from editing.demo_world.clip_train import value_aucs
        from editing.demo_world.world import heldout_batch

        scorer = train_clip(run_dir, runs_root / "generator", steps=steps, init=init, show_progress=show_progress)
        heldout = heldout_batch(256, offset=3)
        aucs = value_aucs(scorer, heldout.images, heldout.looks)
        return {"mean_value_auc_renders": sum(aucs.values()) / len(aucs),
                **{f"auc {value}": auc for value, auc in aucs.items()}, "run": run_dir}
    if network == "identity":
        from editing.demo_world.identity_train import heldout_separation, train_identity

        net = train_identity(run_dir, steps=steps, show_progress=show_progress)
        return {**heldout_separation(net), "run": run_dir}
    if network == "e4e":
        from editing.demo_world.encoder_train import reconstruction_agreement, train_encoder
        from editing.demo_world.judge import load_judge

        e4e = train_encoder(run_dir, runs_root / "generator", steps=steps, init=init, show_progress=show_progress)
        judge = load_judge(judge_path(runs_root))
        return {**reconstruction_agreement(e4e, judge), "run": run_dir}
    raise ValueError(f"unknown network {network!r}")
