"""One dialogue's edits on one page: the original photo, then one row per turn with the user's text, the
belief state and the reply on the left and each mode's edit (and any extra picture, such as a true target)
beside it, its scores under it.

`DialogueView` is the page as data; `editing.evaluation.report` renders it as HTML and `render_contact_sheet` as a PNG
(PIL only, so a sheet can be written wherever an edit is).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SHEET_BACKGROUND = (255, 255, 255)
SHEET_INK = (20, 20, 20)
SHEET_MUTED = (100, 100, 100)  # column headings, 'no image'
MISSING_FILL = (230, 230, 230)


@dataclass
class CellView:
    """One picture of a turn (`image`: path relative to the report folder, None when there is none) and
    the lines under it (scores, verdicts, what the edit aimed at)."""

    image: str | None
    lines: list[str] = field(default_factory=list)


@dataclass
class TurnView:
    """One row: `turn` counts from 1; `cells` maps a column name (a mode, or e.g. "target") to its cell."""

    turn: int
    user: str | None
    state: str
    reply: str | None
    cells: dict[str, CellView] = field(default_factory=dict)


@dataclass
class DialogueView:
    """A dialogue's page: `original` is the aligned photo's path (relative to the report folder)."""

    dialogue_id: str
    original: str | None
    columns: list[str]
    turns: list[TurnView]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(path: Path, cell: int) -> Image.Image:
    """The image at `path` scaled to `cell` px (nearest-neighbour when enlarging, so pixels stay visible)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        resample = Image.NEAREST if image.width < cell else Image.LANCZOS
        return image.resize((cell, cell), resample)


def _wrap(lines: list[str], width: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width) or [""]
    return out


def render_contact_sheet(view: DialogueView, root: str | Path, cell: int = 160) -> Image.Image:
    """The PNG form of `view`: image paths are read relative to `root`; `cell` is each picture's side in px.

    Layout: a title line; a row with the original; one row per turn, a text column on the left (turn
    number, the user's text, the belief state, the reply) and one column per `view.columns`.
    """
    root = Path(root)
    font, small = _font(13), _font(11)
    line_px, small_px = 16, 14
    text_width = 240
    chars = max(cell // 6, 12)
    pad = 8
    width = pad + text_width + len(view.columns) * (cell + pad) + pad

    def row_height(turn: TurnView | None) -> int:
        if turn is None:
            return cell + line_px + pad
        left = len(_wrap(_left_lines(turn), 34)) * line_px
        under = max((len(_wrap(c.lines, chars)) for c in turn.cells.values()), default=0) * small_px
        return max(left, cell + under + 4) + pad

    heights = [row_height(None)] + [row_height(t) for t in view.turns]
    header = pad + line_px * 2 + pad
    sheet = Image.new("RGB", (width, header + sum(heights)), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, pad), f"dialogue {view.dialogue_id}", fill=SHEET_INK, font=font)
    for i, column in enumerate(view.columns):
        draw.text((pad + text_width + i * (cell + pad), pad + line_px), column, fill=SHEET_MUTED, font=font)

    def paste(relative: str | None, x: int, y: int) -> None:
        path = root / relative if relative else None
        if path is not None and path.is_file():
            sheet.paste(_fit(path, cell), (x, y))
        else:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=MISSING_FILL)
            draw.text((x + 6, y + cell // 2 - 6), "no image", fill=SHEET_MUTED, font=small)

    y = header
    draw.text((pad, y), "original", fill=SHEET_INK, font=font)
    paste(view.original, pad + text_width, y)
    y += heights[0]
    for turn, height in zip(view.turns, heights[1:]):
        draw.line((pad, y - pad // 2, width - pad, y - pad // 2), fill=MISSING_FILL)
        for k, line in enumerate(_wrap(_left_lines(turn), 34)):
            draw.text((pad, y + k * line_px), line, fill=SHEET_INK, font=font)
        for i, column in enumerate(view.columns):
            x = pad + text_width + i * (cell + pad)
            cell_view = turn.cells.get(column)
            if cell_view is None:
                continue
            paste(cell_view.image, x, y)
            for k, line in enumerate(_wrap(cell_view.lines, chars)):
                draw.text((x, y + cell + 4 + k * small_px), line, fill=SHEET_INK, font=small)
        y += height
    return sheet


def _left_lines(turn: TurnView) -> list[str]:
    lines = [f"turn {turn.turn}"]
    if turn.user:
        lines.append(f"user: {turn.user}")
    lines.append(f"state: {turn.state or '(empty)'}")
    if turn.reply:
        lines.append(f"reply: {turn.reply}")
    return lines
