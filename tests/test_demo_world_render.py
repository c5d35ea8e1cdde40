"""Demo-world renderer: determinism, every ontology value visibly drawn, profile and belief-state looks."""
from __future__ import annotations

import torch

from data_tools.faces import (
    apply_state, look_from_values, look_values, normalize_look, render_faces, sample_identities, sample_looks,
)
from data_tools.faces.look import default_look
from dialogue.ontology import EXCLUSIVE_GROUPS, SLOT_VALUES, VALUES


def test_same_seed_same_faces_and_different_seeds_differ():
    a = render_faces(sample_identities(4, seed=7), sample_looks(4, torch.Generator().manual_seed(7)))
    b = render_faces(sample_identities(4, seed=7), sample_looks(4, torch.Generator().manual_seed(7)))
    c = render_faces(sample_identities(4, seed=8), sample_looks(4, torch.Generator().manual_seed(8)))
    assert a.shape == (4, 3, 64, 64)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.05
    assert a.min() >= -1 and a.max() <= 1


def test_every_value_changes_the_picture_on_every_face():
    """Switching one value on (from a face that lacks it) changes a clear patch of the image, on each of
    several identities: pixel statistics tell every value apart from its absence."""
    identities = sample_identities(4, seed=3)
    plain = ["no smiling", "brown hair", "straight hair", "no makeup"]
    partner = {"no smiling": "smiling", "brown hair": "black hair", "straight hair": "wavy hair", "no makeup": "lipstick"}
    bases, edits = [], []
    for value in VALUES:
        without = [partner[v] if v == value else v for v in plain]
        base = look_from_values([without] * len(identities), identities)
        bases.append(base)
        edits.append(apply_state(base, [[value]] * len(identities)))
        assert all(value in look_values(look) for look in edits[-1]), value
    ids = identities.repeat(len(VALUES), 1)
    change = (render_faces(ids, torch.cat(edits)) - render_faces(ids, torch.cat(bases))).abs()
    changed = (change.amax(1) > 0.15).float().mean((1, 2)).view(len(VALUES), len(identities))
    for value, fractions in zip(VALUES, changed):
        assert fractions.min() > 0.002, f"{value} hardly changes some faces ({fractions.tolist()})"


def test_any_size_renders_the_same_face():
    ids, looks = sample_identities(2, seed=4), sample_looks(2, torch.Generator().manual_seed(4))
    small = render_faces(ids, looks, 32)
    large = torch.nn.functional.avg_pool2d(render_faces(ids, looks, 128), 4)
    assert (small - large).abs().mean() < 0.05


def test_look_follows_the_ontology_groups():
    identity = sample_identities(1, seed=0)
    look = look_from_values([["smiling", "black hair", "wavy hair", "lipstick"]], identity)[0]
    assert {"smiling", "black hair", "wavy hair", "lipstick"} <= set(look_values(look))
    assert "no makeup" not in look_values(look) and "straight hair" not in look_values(look)
    state = apply_state(look.view(1, -1), [["sad", "blond hair", "no makeup"]])[0]
    values = set(look_values(state))
    assert {"sad", "blond hair", "no makeup"} <= values
    assert not values & {"smiling", "black hair", "lipstick", "heavy makeup"}
    for group in EXCLUSIVE_GROUPS:
        assert len(values & group) <= 1
    removed = apply_state(state.view(1, -1), [[]], [["wavy hair"]])[0]
    assert "straight hair" in look_values(removed)


def test_default_look_fills_every_slot_a_face_always_has():
    for identity in sample_identities(8, seed=1):
        values = set(look_values(default_look(identity)))
        assert len(values & set(SLOT_VALUES["expression"])) == 1
        assert len(values & set(SLOT_VALUES["hair color"])) == 1
        assert len(values & {"straight hair", "wavy hair"}) == 1


def test_soft_looks_are_normalised_and_render_in_between():
    gen = torch.Generator().manual_seed(0)
    a, b = sample_looks(1, gen), sample_looks(1, gen)
    mid = normalize_look((a + b) / 2)
    assert torch.allclose(mid[0, :4].sum(), torch.tensor(1.0))
    ids = sample_identities(1, seed=2)
    ia, ib, im = (render_faces(ids, x) for x in (a, b, mid))
    assert (im - ia).abs().mean() < (ib - ia).abs().mean()
