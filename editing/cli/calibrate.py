"""`i2edit calibrate`: fit the critic's per-value thresholds for a weight set on a labelled folder of faces."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit the critic's per-value CLIP thresholds on labelled aligned faces",
        description="Score every image with the weight set's CLIP against each value's text, fit one threshold "
                    "per value (best balanced accuracy between faces with and without it) and store them with "
                    "the weight set (manifest 'critic' entry, or critic.json beside the public files). Edits are "
                    "then checked value by value and refined when a value falls short.")
    parser.add_argument("--weights", required=True, help="weight set: ffhq, demo, a directory or a manifest file")
    parser.add_argument("--weights-dir", default=None, help="where the ffhq set's files are (default: I2EDIT_WEIGHTS_DIR)")
    parser.add_argument("--images", type=Path, required=True, help="folder of aligned face images")
    parser.add_argument("--labels", type=Path, required=True,
                        help="CelebAMask-HQ-attribute-anno.txt, or JSON {image name: [values it shows]}")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images")
    parser.add_argument("--min-images", type=int, default=20,
                        help="faces needed with and without a value to fit its threshold (default %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device (default: CUDA when available)")
    parser.add_argument("--dry-run", action="store_true", help="print the thresholds without storing them")
    parser.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from editing.pipeline.calibrate import load_folder, read_labels, thresholds_from_labels, value_scores, write_critic
    from editing.pipeline.critic import manifest_entry
    from editing.pipeline.editor import resolve_device
    from editing.weights.weight_set import resolve_set

    weight_set = resolve_set(args.weights, args.weights_dir)
    device = resolve_device(args.device)
    clip = weight_set.load("clip", str(device))
    labels, labelled_values = read_labels(args.labels)
    images, present, names = load_folder(args.images, labels, clip.image_size, args.limit)
    fitted = thresholds_from_labels(value_scores(clip, images), present, args.min_images, labelled_values)
    print(f"{len(names)} labelled images; thresholds for {len(fitted)} of {len(labelled_values)} labelled values")
    for value, threshold in fitted.items():
        print(f"  {value:16s} {threshold.threshold:+.4f}  balanced accuracy {threshold.balanced_accuracy:.3f}  "
              f"({threshold.n_with} with, {threshold.n_without} without)")
    missing = [v for v in labelled_values if v not in fitted]
    if missing:
        print(f"no threshold (fewer than {args.min_images} faces with or without): {', '.join(missing)}")
    if not fitted:
        raise ValueError("no value could be calibrated: label more faces, or lower --min-images")
    if not args.dry_run:
        entry = manifest_entry(fitted, f"{len(names)} labelled images in {args.images} ({args.labels.name})")
        print(f"wrote {write_critic(weight_set, entry)}")
    return 0
