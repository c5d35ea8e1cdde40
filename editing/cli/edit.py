"""`i2edit edit` (one photo, one set of requirements) and `i2edit eval-editing` (Table 4 over dialogues, with an
HTML report)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from editing.pipeline.prompts import TEXT_OBJECTIVES


def add_editing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="SET",
                        help="weight set: ffhq (public files in the weights dir), demo, a directory or a manifest "
                             "(default: the --weights-dir directory, else ffhq)")
    parser.add_argument("--weights-dir", metavar="DIR",
                        help="directory of weight files (default: $I2EDIT_WEIGHTS_DIR, else ~/.cache/i2edit/weights)")
    parser.add_argument("--device", default=os.environ.get("I2EDIT_DEVICE", "auto"),
                        help="torch device: auto (CUDA when available), cpu, cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="optimisation steps per edit (default: 300, the paper's)")
    parser.add_argument("--fast", action="store_true",
                        help="compute the CLIP and identity losses on the generator's 256 px RGB output "
                             "(faster backward pass; not the paper's setting)")
    parser.add_argument("--text-objective", choices=TEXT_OBJECTIVES, default=None,
                        help="description: one text for the whole request (the paper's); per_attribute: the mean "
                             "of one CLIP term per requested value (default: the weight set's own setting, "
                             "description for the public weights)")
    parser.add_argument("--no-align", action="store_true",
                        help="skip face detection and alignment: the photo is already an FFHQ-style face crop "
                             "(always so for a weight set whose manifest says its faces come aligned, e.g. demo)")


def register(subparsers) -> None:
    edit = subparsers.add_parser(
        "edit", help="edit one face photo towards a set of requirements",
        description="Align the photo, invert it with e4e, optimise its W+ code towards the requirements "
                    "(StyleCLIP with identity loss) and write edited.png, reconstruction.png and metrics.json.")
    edit.add_argument("--image", required=True, help="the photo (any format PIL reads)")
    edit.add_argument("--requirements", required=True,
                      help='belief state as text, e.g. "expression: smiling; hair color: black hair"')
    edit.add_argument("--out", required=True, help="output directory")
    edit.add_argument("--mode", choices=("multi", "single"), default="multi",
                      help="multi: from the photo towards all requirements; single: the same for one edit "
                           "(the modes differ only across turns; see eval-editing)")
    edit.add_argument("--json", action="store_true", help="print metrics.json instead of a summary")
    add_editing_options(edit)
    edit.set_defaults(func=run_edit)

    ev = subparsers.add_parser(
        "eval-editing", help="edit every turn of I2Edit dialogues and write Table 4 (FID, LPIPS, MinRel, AvgRel)",
        description="Edit every turn of every dialogue from its gold belief state, in multi-turn and/or single-turn "
                    "mode, and write table4.md, table4.json (with MinRel/AvgRel per turn), turns.jsonl and "
                    "report.html (the table, plots by turn and a contact sheet per dialogue).")
    ev.add_argument("--dialogues", required=True, help="I2Edit JSONL file")
    ev.add_argument("--images", required=True, help="folder that the dialogues' `image` paths are relative to")
    ev.add_argument("--out", required=True, help="output directory")
    ev.add_argument("--modes", default="multi,single", help="comma-separated modes (default: %(default)s)")
    ev.add_argument("--limit", type=int, help="evaluate only the first N dialogues")
    ev.add_argument("--no-images", action="store_true", help="do not save the edited images")
    add_editing_options(ev)
    ev.set_defaults(func=run_eval)


def weight_set_from_args(args):
    from editing.weights.weight_set import resolve_set

    return resolve_set(args.weights or args.weights_dir or "ffhq", args.weights_dir)


def editor_from_args(args, weight_set):
    """The editor the flags ask for: the weight set's own settings (its manifest's `editor` entry: optimiser
    settings, alignment), with --fast, --text-objective and --no-align on top."""
    from editing.pipeline.editor import Editor

    overrides = {"clip_size": 256} if args.fast else {}
    if args.text_objective:
        overrides["text_objective"] = args.text_objective
    return Editor.from_weights(weight_set, device=args.device, settings=weight_set.optimizer_settings(**overrides),
                               align_faces=weight_set.editor.align_faces and not args.no_align)


def run_edit(args) -> int:
    from tqdm import tqdm

    from dialogue.ontology import parse_requirements
    from editing.pipeline.editor import describe_metrics

    state = parse_requirements(args.requirements)
    image = Path(args.image)
    if not image.is_file():
        raise FileNotFoundError(f"--image {image} does not exist")
    out = Path(args.out)
    editor = editor_from_args(args, weight_set_from_args(args))
    inversion = editor.invert(image)
    bar = tqdm(total=args.steps or editor.settings.steps, desc="editing", unit="step", disable=args.json)

    def progress(step: int, total: int, losses: dict, preview) -> None:
        bar.update(1)
        bar.set_postfix(clip=f"{losses['clip']:.3f}")

    result = editor.edit(inversion, state, mode=args.mode, steps=args.steps, progress=progress)
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    result.image.save(out / "edited.png")
    inversion.reconstruction.save(out / "reconstruction.png")
    inversion.aligned.save(out / "aligned.png")
    metrics = {
        **{k: result.metrics[k] for k in ("avg_rel", "min_rel", "per_attribute", "identity", "lpips")},
        "steps": result.steps, "seconds": round(result.seconds, 3), "device": result.device, "mode": result.mode,
        "requirements": state.to_dict(), "text": result.text, "skipped": result.metrics.get("skipped", {}),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"text: {result.text or '(empty state: reconstruction only)'}")
        print(describe_metrics(result.metrics) + f"  ({result.steps} steps, {result.seconds:.1f} s on {result.device})")
        for name, reason in metrics["skipped"].items():
            print(f"{name} skipped: {reason}", file=sys.stderr)
        print(f"wrote {out / 'edited.png'}, {out / 'reconstruction.png'}, {out / 'metrics.json'}")
    return 0


def run_eval(args) -> int:
    from dialogue.records import read_dialogues
    from editing.evaluation.evaluate import evaluate_editing, images_from_dir
    from editing.evaluation.report import write_report
    from editing.pipeline.metrics import load_fid_inception

    dialogues = read_dialogues(args.dialogues)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    weight_set = weight_set_from_args(args)
    editor = editor_from_args(args, weight_set)
    fid, fid_skipped = None, None
    try:
        fid = load_fid_inception(weight_set.path("fid-inception"), editor.device)
    except FileNotFoundError as exc:
        fid_skipped = str(exc)
    out = Path(args.out)
    report = evaluate_editing(editor, dialogues, images_from_dir(args.images), modes=modes, limit=args.limit,
                              steps=args.steps, out_dir=None if args.no_images else out,
                              fid_inception=fid, fid_skipped=fid_skipped)
    paths = report.write(out)
    paths["report"] = write_report(out, report.records, f"Editing evaluation of {Path(args.dialogues).name}",
                                   report.to_markdown(), report.originals, modes=modes, sheets=not args.no_images)
    print(report.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
