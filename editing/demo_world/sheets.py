"""Contact sheets of the demo world: a grid of images, and one sheet per evaluated dialogue.

A dialogue's sheet has one column per turn (after a first column with the face before editing) and one row
per editing mode plus the true target under them:

    column:   original      turn 1        turn 2  ...
    header:   (profile)     +smiling      +black hair
    multi:    e4e inversion edit          edit
    single:   e4e inversion edit          edit
    target:   original render  target     target

Each edit gets a green frame when the judge finds every value of the turn's belief state in it, red when not.
Images are enlarged `scale`× (nearest neighbour) so that 64 px faces can be looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from data_tools.faces import to_pil

GAP = 4
LABEL_WIDTH = 48
HEADER_LINES = 3
_GREEN, _RED, _WHITE, _BLACK = (40, 170, 60), (210, 40, 40), (255, 255, 255), (0, 0, 0)


def grid_image(images: torch.Tensor, columns: int, scale: int = 2) -> Image.Image:
    """images [N, 3, H, W] in [-1, 1] → one PIL image, `columns` a row, `GAP` px apart on white."""
    n, _, h, w = images.shape
    rows = -(-n // columns)
    cell_h, cell_w = h * scale, w * scale
    sheet = Image.new("RGB", (columns * (cell_w + GAP) + GAP, rows * (cell_h + GAP) + GAP), _WHITE)
    for k, image in enumerate(images):
        tile = to_pil(image).resize((cell_w, cell_h), Image.NEAREST)
        sheet.paste(tile, (GAP + (k % columns) * (cell_w + GAP), GAP + (k // columns) * (cell_h + GAP)))
    return sheet


@dataclass
class DialogueSheet:
    """What one dialogue's sheet shows: `original` [3, H, W] (the render), per turn the `headers` text and the
    `targets` [3, H, W]; per mode its `inversion` and per turn its `edits` [3, H, W] and `success` (True,
    False or None when the state is empty)."""

    dialogue_id: str
    original: torch.Tensor
    headers: list[str] = field(default_factory=list)
    targets: list[torch.Tensor] = field(default_factory=list)
    inversions: dict[str, torch.Tensor] = field(default_factory=dict)
    edits: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    success: dict[str, list[bool | None]] = field(default_factory=dict)

    def render(self, scale: int = 2) -> Image.Image:
        size = self.original.shape[-1] * scale
        font = ImageFont.load_default()
        line = 11
        header = HEADER_LINES * line + GAP
        modes = list(self.edits)
        columns = 1 + len(self.targets)
        rows = len(modes) + 1
        sheet = Image.new("RGB", (LABEL_WIDTH + columns * (size + GAP) + GAP, header + rows * (size + GAP) + GAP), _WHITE)
        draw = ImageDraw.Draw(sheet)
        chars = max(4, size // 6)

        def cell(image: torch.Tensor, row: int, col: int, frame: bool | None = None) -> None:
            x, y = LABEL_WIDTH + GAP + col * (size + GAP), header + GAP + row * (size + GAP)
            if frame is not None:
                draw.rectangle((x - 2, y - 2, x + size + 1, y + size + 1), outline=_GREEN if frame else _RED, width=2)
            sheet.paste(to_pil(image).resize((size, size), Image.NEAREST), (x, y))

        for col, text in enumerate(["e4e inversion; original below", *self.headers]):
            words, lines, current = text.split(" "), [], ""
            for word in words:
                if current and len(current) + 1 + len(word) > chars:
                    lines.append(current)
                    current = word
                else:
                    current = f"{current} {word}".strip()
            lines.append(current)
            for k, text_line in enumerate(lines[:HEADER_LINES]):
                draw.text((LABEL_WIDTH + GAP + col * (size + GAP), k * line), text_line, fill=_BLACK, font=font)
        for row, mode in enumerate(modes):
            draw.text((2, header + GAP + row * (size + GAP) + size // 2 - 5), mode, fill=_BLACK, font=font)
            cell(self.inversions[mode], row, 0)
            for col, (image, ok) in enumerate(zip(self.edits[mode], self.success[mode]), start=1):
                cell(image, row, col, ok)
        draw.text((2, header + GAP + len(modes) * (size + GAP) + size // 2 - 5), "target", fill=_BLACK, font=font)
        cell(self.original, len(modes), 0)
        for col, image in enumerate(self.targets, start=1):
            cell(image, len(modes), col)
        return sheet

    def save(self, path: Path, scale: int = 2) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.render(scale).save(path)
        return path


def turn_header(added: Sequence[str], removed: Sequence[str]) -> str:
    """The header of a turn's column: "+value" for each value added to the belief state, "-value" for each
    taken off, "(no change)" otherwise."""
    parts = [f"+{v}" for v in added] + [f"-{v}" for v in removed]
    return " ".join(parts) or "(no change)"
