"""Where on a face each ontology value is drawn: per-value region masks, read off the renderer itself.

A value's region on a face is where switching the value changes the picture: for an additive value (and
wavy hair), the pixels that differ between the face with the value on and off; for the expression and hair
colour groups, the pixels that differ between any two of the group's four values (shared by the group's
values); for `no makeup`, the union of the heavy-makeup and lipstick regions. The masks follow each face's
geometry (mouth width, eye position, ...) exactly, at the cost of 22 renders per face.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from data_tools.faces.look import ADDITIVE, EXPRESSIONS, HAIR_COLORS, HEAVY_MAKEUP, LIPSTICK, N_VALUES, NO_MAKEUP, STRAIGHT, WAVY
from data_tools.faces.render import render_faces

CHANGE_THRESHOLD = 0.04  # a pixel belongs to a region when some channel moves more than this (images in [-1, 1])


def value_regions(identities: torch.Tensor, looks: torch.Tensor, size: int = 64, dilate: int = 1) -> torch.Tensor:
    """Region masks [B, 23, size, size] (float, 0 or 1) of faces `identities` [B, N_IDENTITY], `looks` [B, 23],
    grown by `dilate` pixels (so that a region covers the edges a blurred drawing of the value would touch)."""
    b = len(identities)
    variants = []  # each [B, 23] look
    for group in (EXPRESSIONS, HAIR_COLORS):
        for member in group:
            look = looks.clone()
            look[:, group] = 0
            look[:, member] = 1
            variants.append(look)
    texture = looks.clone()
    texture[:, WAVY] = (looks[:, WAVY] < 0.5).float()
    variants.append(texture)
    for value in ADDITIVE:
        look = looks.clone()
        look[:, value] = (looks[:, value] < 0.5).float()
        variants.append(look)
    images = render_faces(identities.repeat(len(variants) + 1, 1), torch.cat([looks, *variants]), size)
    images = images.view(len(variants) + 1, b, 3, size, size)
    base, rest = images[0], images[1:]

    def moved(a: torch.Tensor, b_: torch.Tensor) -> torch.Tensor:
        return ((a - b_).abs().amax(1) > CHANGE_THRESHOLD).float()  # [B, size, size]

    regions = torch.zeros(b, N_VALUES, size, size)
    for k, group in enumerate((EXPRESSIONS, HAIR_COLORS)):
        members = rest[4 * k:4 * k + 4]
        spread = moved(members.amax(0), members.amin(0))
        regions[:, group] = spread.unsqueeze(1)
    regions[:, WAVY] = regions[:, STRAIGHT] = moved(rest[8], base)
    for j, value in enumerate(ADDITIVE):
        regions[:, value] = moved(rest[9 + j], base)
    regions[:, NO_MAKEUP] = torch.maximum(regions[:, HEAVY_MAKEUP], regions[:, LIPSTICK])
    if dilate:
        regions = F.max_pool2d(regions, 2 * dilate + 1, stride=1, padding=dilate)
    return regions
