"""Face attribute profiles: read from CelebA-HQ's 40 binary attributes, or sampled.

A profile is the complete, consistent list of ontology values a face already has: exactly one
expression, one hair colour, one of straight/wavy hair, either `no makeup` or makeup (`heavy makeup`
and/or `lipstick`), plus whichever additive values apply. The demo world renders faces from it, and
the simulator only requests values the face does not have yet (paper §3.1).

CelebA-HQ -> ontology (columns of `CelebAMask-HQ-attribute-anno.txt`):

| ontology value | CelebA attribute(s) |
|---|---|
| `smiling` / `no smiling` | `Smiling` = 1 / otherwise (`angry` and `sad` have no CelebA label) |
| hair colour | first set of `Gray_Hair`, `Blond_Hair`, `Black_Hair`, `Brown_Hair`; none set -> `brown hair` |
| `wavy hair` / `straight hair` | `Wavy_Hair` = 1 / otherwise (`Straight_Hair` or neither) |
| `receding hairline` | `Receding_Hairline` or `Bald` |
| `sideburns`, `bangs`, `mustache`, `goatee` | `Sideburns`, `Bangs`, `Mustache`, `Goatee` |
| `heavy makeup`, `lipstick` | `Heavy_Makeup`, `Wearing_Lipstick`; neither -> `no makeup` |
| `earrings`, `bushy eyebrows`, `big lips`, `rosy cheeks`, `pale skin` | `Wearing_Earrings`, `Bushy_Eyebrows`, `Big_Lips`, `Rosy_Cheeks`, `Pale_Skin` |

`Male` gives the profile's gender (the pronoun the simulated user uses). The other 19 attributes are
not part of the ontology and are ignored.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from dialogue.ontology import VALUE_INDEX, BeliefState

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
HAIR_COLOR_PRIORITY: tuple[tuple[str, str], ...] = (
    ("Gray_Hair", "gray hair"), ("Blond_Hair", "blond hair"), ("Black_Hair", "black hair"), ("Brown_Hair", "brown hair"),
)
ADDITIVE: tuple[tuple[str, str], ...] = (
    ("Sideburns", "sideburns"), ("Bangs", "bangs"), ("Mustache", "mustache"), ("Goatee", "goatee"),
    ("Heavy_Makeup", "heavy makeup"), ("Wearing_Lipstick", "lipstick"), ("Wearing_Earrings", "earrings"),
    ("Bushy_Eyebrows", "bushy eyebrows"), ("Big_Lips", "big lips"), ("Rosy_Cheeks", "rosy cheeks"),
    ("Pale_Skin", "pale skin"),
)
GENDERS = ("female", "male")


@dataclass(frozen=True)
class Profile:
    """A face: its image name, gender and current ontology values (canonical order)."""

    image: str | None
    gender: str
    values: tuple[str, ...]


def _ordered(values: set[str]) -> tuple[str, ...]:
    BeliefState(frozenset(values))  # raises if the profile broke an exclusive group
    return tuple(sorted(values, key=VALUE_INDEX.__getitem__))


def profile_from_attributes(image: str, attrs: dict[str, bool]) -> Profile:
    """The profile of a face from its CelebA attributes (name -> present), per the module's table."""
    values = {"smiling" if attrs["Smiling"] else "no smiling"}
    values.add(next((v for a, v in HAIR_COLOR_PRIORITY if attrs[a]), "brown hair"))
    values.add("wavy hair" if attrs["Wavy_Hair"] else "straight hair")
    if attrs["Receding_Hairline"] or attrs["Bald"]:
        values.add("receding hairline")
    values.update(v for a, v in ADDITIVE if attrs[a])
    if not (attrs["Heavy_Makeup"] or attrs["Wearing_Lipstick"]):
        values.add("no makeup")
    return Profile(image=image, gender="male" if attrs["Male"] else "female", values=_ordered(values))


def read_celeba_attributes(path: str | Path) -> list[Profile]:
    """Profiles of every image in a `CelebAMask-HQ-attribute-anno.txt`-style file.

    Layout: line 1 the image count, line 2 the 40 attribute names, then one line per image:
    `name.jpg` and 40 values, 1 (present) or -1 (absent; 0 is read as absent too). Raises
    `ValueError` naming the file and line for anything else.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read CelebA attribute file {path}: {exc.strerror or exc}") from exc
    if len(lines) < 3:
        raise ValueError(f"{path}: expected a count line, a line of attribute names and image lines")
    names = lines[1].split()
    missing = [a for a in CELEBA_ATTRIBUTES if a not in names]
    if missing:
        raise ValueError(f"{path}:2: attribute names line lacks {', '.join(missing)}; is this "
                         "CelebAMask-HQ-attribute-anno.txt?")
    profiles = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise ValueError(f"{path}:{number}: expected an image name and {len(names)} values, got {len(fields)} fields")
        if any(v not in ("1", "-1", "0") for v in fields[1:]):
            raise ValueError(f"{path}:{number}: attribute values must be 1 or -1")
        attrs = {name: value == "1" for name, value in zip(names, fields[1:])}
        profiles.append(profile_from_attributes(fields[0], attrs))
    declared = lines[0].strip()
    if declared.isdigit() and int(declared) != len(profiles):
        raise ValueError(f"{path}:1: declares {declared} images but lists {len(profiles)}")
    return profiles


def sample_profile(rng: random.Random, image: str | None) -> Profile:
    """A plausible random face, with frequencies roughly like CelebA-HQ's."""
    gender = rng.choice(GENDERS)
    male = gender == "male"

    def p(female: float, male_: float) -> bool:
        return rng.random() < (male_ if male else female)

    values = {"smiling" if rng.random() < 0.5 else "no smiling"}
    values.add(rng.choices(("brown hair", "blond hair", "black hair", "gray hair"),
                           weights=(0.3, 0.25 if not male else 0.1, 0.3, 0.05 if not male else 0.15))[0])
    values.add("wavy hair" if p(0.45, 0.2) else "straight hair")
    for value, female, male_ in (("receding hairline", 0.03, 0.2), ("sideburns", 0.0, 0.15), ("bangs", 0.25, 0.07),
                                 ("mustache", 0.0, 0.12), ("goatee", 0.0, 0.15), ("heavy makeup", 0.55, 0.01),
                                 ("lipstick", 0.7, 0.01), ("earrings", 0.3, 0.03), ("bushy eyebrows", 0.07, 0.3),
                                 ("big lips", 0.25, 0.2), ("rosy cheeks", 0.1, 0.02), ("pale skin", 0.06, 0.03)):
        if p(female, male_):
            values.add(value)
    if not values & {"heavy makeup", "lipstick"}:
        values.add("no makeup")
    return Profile(image=image, gender=gender, values=_ordered(values))
