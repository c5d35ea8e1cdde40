"""Single-value edits of the six sample faces: can the demo set put each of the 23 values on a face?

Each shipped sample face (`editing.demo_world.settings.SAMPLE_FACES`, rendered from its profile) is inverted
once and edited towards every value its render lacks, one value at a time (a one-value belief state, the
demo set's optimiser settings, as the first turn of a chat). For each edit the judge says whether it finds the
value, and the edit is compared with its true target (the same face with the value applied to its profile,
`data_tools.faces.apply_state`): LPIPS-style distance on the judge's features and mean absolute pixel
difference (pixels in [0, 1]), beside the original render's distances to the same target.

Prints per value how often the judge finds it and the mean distances, writes them with every edit's figures
to `--json` (default results/demo_world_single_value.json) and a contact sheet (`--sheet`: one row per face,
its original then one column per value, each edit framed green when the judge finds the value, red when not;
an empty cell where the face already has the value). One thread; about 100 edits.

    .venv/bin/python bench/demo_world_single_value.py [--weights editing/demo_set] [--steps N]
        [--json results/demo_world_single_value.json] [--sheet var/demo_world_single_value.png]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GAP = 4


def sheet_image(rows: list[tuple[str, "object", dict]], values: tuple[str, ...], scale: int = 1):
    """rows: (face name, original [3, H, W], {value: (edit [3, H, W], found)}) → a PIL contact sheet."""
    from PIL import Image, ImageDraw, ImageFont

    from data_tools.faces import to_pil

    size = rows[0][1].shape[-1] * scale
    label, header = 48, 40
    sheet = Image.new("RGB", (label + (len(values) + 1) * (size + GAP) + GAP, header + len(rows) * (size + GAP) + GAP),
                      (255, 255, 255))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for col, name in enumerate(("original", *values)):
        x = label + GAP + col * (size + GAP)
        for k, word in enumerate(name.split(" ")[:3]):
            draw.text((x, k * 11), word, fill=(0, 0, 0), font=font)
    for row, (face, original, edits) in enumerate(rows):
        y = header + GAP + row * (size + GAP)
        draw.text((2, y + size // 2 - 5), face, fill=(0, 0, 0), font=font)
        sheet.paste(to_pil(original).resize((size, size), Image.NEAREST), (label + GAP, y))
        for col, value in enumerate(values, start=1):
            if value not in edits:
                continue
            image, found = edits[value]
            x = label + GAP + col * (size + GAP)
            draw.rectangle((x - 2, y - 2, x + size + 1, y + size + 1), outline=(40, 170, 60) if found else (210, 40, 40),
                           width=2)
            sheet.paste(to_pil(image).resize((size, size), Image.NEAREST), (x, y))
    return sheet


def main() -> None:
    from editing.weights.weight_set import DEMO_SET_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEMO_SET_DIR, help="demo weight-set directory")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the demo set's)")
    parser.add_argument("--json", type=Path, default=Path("results/demo_world_single_value.json"))
    parser.add_argument("--sheet", type=Path, default=Path("var/demo_world_single_value.png"))
    parser.add_argument("--scale", type=int, default=1, help="enlarge the sheet's faces this many times")
    args = parser.parse_args()

    import torch

    from data_tools.faces import apply_state, look_values, render_faces
    from dialogue.ontology import VALUE_INDEX, VALUES, BeliefState
    from editing.demo_world.judge import load_judge
    from editing.demo_world.settings import SAMPLE_FACES, demo_editor_settings, read_settings
    from editing.demo_world.world import render_profile
    from editing.pipeline.editor import Editor
    from editing.pipeline.image_tensors import tensor_to_pil

    torch.set_num_threads(1)
    started = time.perf_counter()
    settings = demo_editor_settings(args.weights)
    editor = Editor.from_weights(str(args.weights / "manifest.json"), settings=settings, align_faces=False)
    judge = load_judge(args.weights / read_settings(args.weights)["judge"])
    size = editor.generator.size
    edits, rows = [], []
    for name, profile in SAMPLE_FACES.items():
        identity, look, original = render_profile(name, profile, size)
        inversion = editor.invert(tensor_to_pil(original.unsqueeze(0)), align=False)
        has = set(look_values(look))
        row: dict = {}
        for value in (v for v in VALUES if v not in has):
            target_look = apply_state(look.view(1, -1), [[value]])
            target = render_faces(identity.view(1, -1), target_look, size)
            result = editor.edit(inversion, BeliefState.of(value), steps=args.steps)
            image = result.tensor.float().clamp(-1, 1)
            with torch.no_grad():
                found = bool(judge.present(image)[0, VALUE_INDEX[value]])
                record = {
                    "face": name, "value": value, "found": found,
                    "target_lpips": float(judge.feature_distance(image, target)[0]),
                    "original_target_lpips": float(judge.feature_distance(original.unsqueeze(0), target)[0]),
                    "target_l1": float((image - target).abs().mean() / 2),
                    "original_target_l1": float((original.unsqueeze(0) - target).abs().mean() / 2),
                    "seconds": result.seconds,
                }
            edits.append(record)
            row[value] = (image[0], found)
        rows.append((name, original, row))
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    by_value = {}
    for value in VALUES:
        mine = [e for e in edits if e["value"] == value]
        if mine:
            by_value[value] = {"asked": len(mine), "found": sum(e["found"] for e in mine),
                               "rate": mean([float(e["found"]) for e in mine]),
                               **{k: mean([e[k] for e in mine]) for k in ("target_lpips", "original_target_lpips",
                                                                            "target_l1", "original_target_l1")}}
    overall = {"edits": len(edits), "found": mean([float(e["found"]) for e in edits]),
               "values_at_or_above_0.8": sum(1 for v in by_value.values() if v["rate"] >= 0.8),
               "values": len(by_value),
               **{k: mean([e[k] for e in edits]) for k in ("target_lpips", "original_target_lpips", "target_l1",
                                                             "original_target_l1")}}
    overall["target_ratio"] = overall["target_lpips"] / overall["original_target_lpips"]
    result = {"command": "bench/demo_world_single_value.py", "weights": str(args.weights),
              "optimizer": {k: getattr(settings, k) for k in ("steps", "lr", "l2_lambda", "id_lambda", "text_objective")}
              | ({"steps": args.steps} if args.steps else {}),
              "overall": overall, "by_value": by_value, "edits": edits, "seconds": time.perf_counter() - started}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet_image(rows, tuple(VALUES), args.scale).save(args.sheet)
    print(f"{'value':18s} found/asked  target LPIPS-style (original)  target L1 (original)")
    for value, v in by_value.items():
        print(f"{value:18s} {v['found']:2d}/{v['asked']:<2d} {v['rate']:5.2f}  {v['target_lpips']:6.3f} "
              f"({v['original_target_lpips']:.3f})        {v['target_l1']:.4f} ({v['original_target_l1']:.4f})")
    print(f"all: {overall['found']:.3f} of {overall['edits']} edits found; {overall['values_at_or_above_0.8']} of "
          f"{overall['values']} values at >= 0.8; target ratio {overall['target_ratio']:.3f}; "
          f"{result['seconds']:.0f} s; wrote {args.json} and {args.sheet}")


if __name__ == "__main__":
    main()
