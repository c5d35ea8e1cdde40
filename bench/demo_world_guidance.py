"""What guides a demo-world edit best: the judge's view of multi-turn edits under each CLIP objective.

For every non-empty turn of the first N test dialogues, the face is edited (multi-turn mode: from its
inversion towards the whole belief state, the demo set's optimiser settings) with the CLIP term of each
`--guide`:

- `description`: StyleCLIP's one text for the whole state (the paper's objective);
- `per_attribute`: the mean of one CLIP term per requested value (the demo set's objective);
- `judge`: the attribute judge itself (softplus of minus each requested value's logit, averaged) in
  place of CLIP. Never used by the pipeline, since the judge is the referee: an upper bound that says
  whether the generator can show the state near the inverted code at all.

It prints, per guide, judge success (every requested value found), the share of requested values found,
and how often CLIP's own sigmoid head and the judge agree on a requested value (CLIP says present, judge
too / judge not). One thread, about 4 minutes per guide for 16 dialogues.

    .venv/bin/python bench/demo_world_guidance.py [--dialogues 16] [--guide description per_attribute judge]
        [--lr 0.05] [--steps 60] [--id-lambda 0.05] [--json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

GUIDES = ("description", "per_attribute", "judge")


def judge_guided_edit(editor, judge, plan, values: list[int], settings):
    """The optimiser's loop with the judge's logits as the guiding term (L2 and identity as usual):
    returns the edited image [1, 3, size, size]."""
    import torch
    import torch.nn.functional as F

    from editing.pipeline.losses import IdentityLoss, latent_l2
    from editing.pipeline.optimizer import styleclip_lr

    render = lambda w: editor.generator.synthesis(w, randomize_noise=False)  # noqa: E731
    with torch.no_grad():
        identity = IdentityLoss(editor.identity, render(plan.anchor))
    w = plan.start.clone().requires_grad_(True)
    adam = torch.optim.Adam([w], lr=settings.lr)
    index = torch.tensor(values)
    for step in range(settings.steps):
        for group in adam.param_groups:
            group["lr"] = styleclip_lr(step, settings.steps, settings.lr)
        image = render(w)
        loss = (F.softplus(-judge(image)[:, index]).mean() + settings.l2_lambda * latent_l2(w, plan.anchor).mean()
                + settings.id_lambda * identity(image).mean())
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
    with torch.no_grad():
        return render(w.detach())


def run_guide(guide: str, editor, judge, faces, settings) -> dict:
    import torch

    from dialogue.ontology import VALUE_INDEX
    from editing.pipeline.editor import plan_edit
    from editing.pipeline.prompts import attribute_texts

    clip = editor.clip.model
    editor.settings = settings if guide == "judge" else dataclasses.replace(settings, text_objective=guide)
    successes, found, agreement = [], [], {"clip yes, judge yes": 0, "clip yes, judge no": 0,
                                           "clip no, judge yes": 0, "clip no, judge no": 0}
    for inversion, states in faces:
        for state in states:
            values = list(state.values)
            if guide == "judge":
                image = judge_guided_edit(editor, judge, plan_edit(inversion, state), [VALUE_INDEX[v] for v in values],
                                          settings)
            else:
                image = editor.edit(inversion, state, "multi").tensor
            with torch.no_grad():
                present = judge.present(image.float())[0]
                features = editor.clip.encode_image(image.float())
                texts = editor.clip.encode_text(list(attribute_texts(state).values()))
                clip_says = torch.sigmoid(features @ texts.T * clip.logit_scale.exp() + clip.logit_bias)[0] > 0.5
            hits = [bool(present[VALUE_INDEX[v]]) for v in values]
            successes.append(all(hits))
            found.extend(hits)
            for hit, says in zip(hits, clip_says.tolist()):
                agreement[f"clip {'yes' if says else 'no'}, judge {'yes' if hit else 'no'}"] += 1
    return {"turns": len(successes), "success": sum(successes) / len(successes),
            "values_found": sum(found) / len(found), "requested_values": len(found), "clip_vs_judge": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=16, help="first N test dialogues (default: 16)")
    parser.add_argument("--data", type=Path, default=Path("var/corpus/test.jsonl"), help="dialogue file")
    parser.add_argument("--guide", nargs="+", choices=GUIDES, default=list(GUIDES))
    parser.add_argument("--lr", type=float, help="optimiser learning rate (default: the demo set's)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: the demo set's)")
    parser.add_argument("--id-lambda", type=float, help="identity weight (default: the demo set's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import torch

    from dialogue.records import read_dialogues
    from editing.demo_world.evaluate import face_of
    from editing.demo_world.judge import load_judge
    from editing.demo_world.settings import demo_editor_settings, read_settings
    from editing.pipeline.editor import Editor
    from editing.pipeline.image_tensors import tensor_to_pil
    from editing.weights.weight_set import DEMO_SET_DIR

    torch.set_num_threads(1)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: build the corpus with `i2edit data build --out var/corpus`")
    settings = demo_editor_settings()
    overrides = {"lr": args.lr, "steps": args.steps, "id_lambda": args.id_lambda}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    editor = Editor.from_weights("demo", settings=settings, align_faces=False)
    judge = load_judge(DEMO_SET_DIR / read_settings()["judge"]).eval()
    judge.requires_grad_(False)
    faces = []
    for dialogue in read_dialogues(args.data)[:args.dialogues]:
        inversion = editor.invert(tensor_to_pil(face_of(dialogue, editor.generator.size).unsqueeze(0)), align=False)
        faces.append((inversion, [turn.belief_state for turn in dialogue.turns if turn.belief_state]))
    result = {"dialogues": len(faces), "settings": dataclasses.asdict(settings),
              "guides": {guide: run_guide(guide, editor, judge, faces, settings) for guide in args.guide}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(faces)} test dialogues, multi-turn, {settings.steps} steps, lr {settings.lr}, "
          f"id_lambda {settings.id_lambda}")
    for guide, row in result["guides"].items():
        print(f"{guide:14s} success {row['success']:.3f} over {row['turns']} turns, values found "
              f"{row['values_found']:.3f} of {row['requested_values']}; {row['clip_vs_judge']}")


if __name__ == "__main__":
    main()
