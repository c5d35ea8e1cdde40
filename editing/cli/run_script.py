"""`i2edit run-script FILE`: run a multi-turn prompt file (YAML, JSON or JSON Lines) through the dialogue model
and the editor, and write every turn's image, state, reply and metrics, contact sheets and an HTML report."""
from __future__ import annotations

import sys
from pathlib import Path

from editing.cli.edit import add_editing_options, editor_from_args, weight_set_from_args


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run-script", help="run a multi-turn prompt file (YAML/JSON/JSONL) and write images, metrics and a report",
        description="For each entry of the script (a photo or sample face and its user turns, or fixed states), track "
                    "each turn's belief state with the dialogue model, edit every turn in each mode, and write "
                    "OUT/dialogues/<id>/ (images, dialogue.json, sheet.png), table4.md/json, turns.jsonl, "
                    "errors.json and report.html. Finished dialogues are skipped when run again (resume); a bad "
                    "entry is reported and the others still run (exit status 1 if any failed).")
    run.add_argument("script", help="the prompt file: .yaml/.yml, .json or .jsonl")
    run.add_argument("--out", required=True, help="output directory (reused to resume)")
    run.add_argument("--modes", default="multi,single", help="comma-separated modes (default: %(default)s)")
    run.add_argument("--dialogue-model", metavar="DIR", help="dialogue model directory (default: the shipped model)")
    run.add_argument("--samples", metavar="DIR",
                     help="folder of sample faces that 'sample: NAME' entries name "
                          "(default: the weight set's samples/)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_editing_options(run)
    run.set_defaults(func=run_script_command)


def run_script_command(args) -> int:
    from editing.evaluation.prompt_script import read_script
    from editing.evaluation.run_script import run_script, write_run_outputs
    from editing.pipeline.editor import MODES

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"--modes must be among {', '.join(MODES)}; got {args.modes!r}")
    entries, errors = read_script(args.script)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    weight_set = weight_set_from_args(args)
    editor = editor_from_args(args, weight_set)

    def tracker():
        from dialogue.model import DialogueModel

        device = None if args.device == "auto" else args.device
        return DialogueModel.from_pretrained(args.dialogue_model, device=device)

    settings = {"weights": f"{weight_set.name}:{Path(weight_set.root).resolve()}",
                "dialogue_model": str(Path(args.dialogue_model).resolve()) if args.dialogue_model else "shipped",
                "optimizer": repr(editor.settings), "align": editor.align_faces}
    sample_dir = Path(args.samples) if args.samples else Path(weight_set.root) / "samples"
    out = Path(args.out)
    run = run_script(entries, editor, out, modes=modes, steps=args.steps, tracker_factory=tracker,
                     sample_dir=sample_dir, settings=settings, show_progress=not args.quiet)
    for error in run.failed:  # those of the run itself; the script's own were printed before it started
        print(f"error: {error}", file=sys.stderr)
    run.failed = sorted(errors + run.failed, key=lambda e: e.entry)
    steps = args.steps if args.steps is not None else editor.settings.steps
    paths = write_run_outputs(run, out, modes, steps, str(editor.device), editor.skipped,
                              f"Run of {Path(args.script).name}")
    print(f"{len(run.ran)} dialogues run, {len(run.resumed)} already finished (skipped), {len(run.failed)} failed"
          + (f" (listed in {paths['errors']})" if run.failed else ""))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if run.failed else 0
