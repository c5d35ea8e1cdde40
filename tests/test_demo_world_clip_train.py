"""The demo CLIP's training terms, by hand, and the shipped CLIP's value texts (no two the same)."""
from __future__ import annotations

import math

import pytest
import torch

from editing.demo_world.clip_train import text_separation


def test_text_separation_by_hand():
    same_twice = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert text_separation(same_twice).item() == pytest.approx(2 / 6)  # two of six ordered pairs at cosine 1
    assert text_separation(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).item() == 0.0  # opposite: not pushed
    sixty = torch.tensor([[1.0, 0.0], [math.cos(math.pi / 3), math.sin(math.pi / 3)]])
    assert text_separation(sixty).item() == pytest.approx(0.25)


def test_text_separation_pulls_equal_texts_apart():
    features = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0]], requires_grad=True)
    step = torch.optim.SGD([features], lr=0.1)
    before = text_separation(torch.nn.functional.normalize(features, dim=1)).item()
    for _ in range(20):
        step.zero_grad()
        text_separation(torch.nn.functional.normalize(features, dim=1)).backward()
        step.step()
    assert text_separation(torch.nn.functional.normalize(features, dim=1)).item() < before


def test_shipped_clip_tells_the_expression_and_texture_texts_apart():
    """At step 3000 the four expression texts had one embedding and straight/wavy another (pairwise cosines
    1.00), so the StyleCLIP optimiser had no direction towards any of them; the shipped CLIP keeps every pair
    of them well apart."""
    from editing.pipeline.prompts import attribute_text
    from editing.weights.weight_set import resolve_set

    clip = resolve_set("demo").load("clip")
    names = ("smiling", "angry", "sad", "no smiling", "straight hair", "wavy hair")
    with torch.no_grad():
        features = clip.model.encode_text(clip.tokenizer([attribute_text(v) for v in names]), normalize=True)
    cosines = features @ features.T
    assert cosines[~torch.eye(len(names), dtype=torch.bool)].max().item() < 0.5
