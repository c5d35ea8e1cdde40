"""The HTML report of an editing run: one file that opens in a browser without a server.

`write_report(out_dir, records, ...)` writes `out_dir/report.html` and, beside it, `out_dir/report/plots/*.png`
(per-turn plots, `editing.evaluation.report_plots`) and `out_dir/report/sheets/<dialogue>.png` (contact sheets,
`editing.evaluation.contact_sheet`). The HTML refers to those and to the edited images by relative paths, so the
output folder can be moved or zipped as a whole. It holds:

- the summary block (Table 4, or the demo world's table), given as Markdown and converted;
- plots by turn for each mode: success, marginal success, AvgRel, MinRel, identity, and the distance to the
  true target where the records carry one; metrics that no record has are listed as not measured;
- per dialogue, a contact sheet: the original, then one row per turn with the user's text, the belief
  state and the reply, and each mode's edit side by side with its scores under it.

Per-turn fields are read from `editing.evaluation.evaluate.TurnRecord`s. Optional fields in a record's `extra`
are shown when present: `success` / `marginal_success` (booleans, plotted as rates), `<name>_image`
(a picture path relative to `out_dir`, shown in a column `<name>` beside the edits, e.g. `target_image`),
`target_<metric>` (numbers: distances to the true target, plotted), `original_<key>` (the original
photo's value of `<key>`, drawn as a reference line and shown once per turn), any other number or list
of values (shown under the edit).
"""
from __future__ import annotations

import datetime
import html
import logging
import re
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from editing.evaluation.contact_sheet import CellView, DialogueView, TurnView, render_contact_sheet
from editing.evaluation.report_plots import PLOTTED_METRICS, write_plots

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
ASSETS_DIR = "report"
IMAGE_SUFFIX = "_image"
ORIGINAL_PREFIX = "original_"
MODE_LABELS = {"multi": "multi-turn", "single": "single-turn"}
FIELD_LABELS = {"avg_rel": "AvgRel", "min_rel": "MinRel", "identity": "identity", "lpips": "LPIPS",
                "success": "success", "marginal_success": "marginal success", "judge_lpips": "LPIPS-style",
                "judge_values": "judge sees", "verdicts": "critic"}
NOT_MEASURED = {
    "success": "these need an attribute judge, which `i2edit demo-world eval` has",
    "marginal_success": "these need an attribute judge, which `i2edit demo-world eval` has",
    "identity": "no identity network in this weight set",
}
DISPLAY_PX = 160  # side of a face picture in the page


def _label(key: str) -> str:
    return FIELD_LABELS.get(key, key.replace("_", " "))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _state_text(state: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{slot}: {', '.join(values)}" for slot, values in state.items())


def _cell_lines(record: Any) -> list[str]:
    """Scores under an edit: AvgRel/MinRel, identity/LPIPS, per-value cosines, `extra` fields, the aim."""
    lines = []
    rel = [f"{_label(k)} {_fmt(getattr(record, k))}" for k in ("avg_rel", "min_rel") if getattr(record, k) is not None]
    if rel:
        lines.append("  ".join(rel))
    other = [f"{_label(k)} {_fmt(getattr(record, k))}" for k in ("identity", "lpips") if getattr(record, k) is not None]
    if other:
        lines.append("  ".join(other))
    if record.per_attribute:
        lines.append(", ".join(f"{value} {score:.3f}" for value, score in record.per_attribute.items()))
    for key, value in record.extra.items():
        if key.endswith(IMAGE_SUFFIX) or key.startswith(ORIGINAL_PREFIX) or value is None:
            continue
        if isinstance(value, (bool, int, float, str)) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value)):
            lines.append(f"{_label(key)}: {_fmt(value)}")
        elif isinstance(value, Mapping) and all(isinstance(v, bool) for v in value.values()):
            lines.append(f"{_label(key)}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()))
    if record.text:
        lines.append(f"aimed at: {record.text}")
    return lines


def dialogue_views(records: Sequence[Any], originals: Mapping[str, str] | None = None) -> list[DialogueView]:
    """One view per dialogue (in the records' order): a row per turn, a column per mode, then one column per
    `<name>_image` field of `extra` (e.g. "target")."""
    originals = originals or {}
    order: list[str] = []
    by_dialogue: dict[str, list[Any]] = {}
    for r in records:
        if r.dialogue_id not in by_dialogue:
            order.append(r.dialogue_id)
        by_dialogue.setdefault(r.dialogue_id, []).append(r)
    views = []
    for dialogue_id in order:
        rows = by_dialogue[dialogue_id]
        modes = list(dict.fromkeys(r.mode for r in rows))
        extra_columns = sorted({k[: -len(IMAGE_SUFFIX)] for r in rows for k, v in r.extra.items()
                                if k.endswith(IMAGE_SUFFIX) and isinstance(v, str)})
        turns = []
        for turn in sorted({r.turn for r in rows}):
            in_turn = [r for r in rows if r.turn == turn]
            first = in_turn[0]
            view = TurnView(turn=turn, user=first.user, state=_state_text(first.state), reply=first.reply)
            for r in in_turn:
                view.cells[MODE_LABELS.get(r.mode, r.mode)] = CellView(r.image_file, _cell_lines(r))
            for column in extra_columns:
                holder = next((r for r in in_turn if isinstance(r.extra.get(column + IMAGE_SUFFIX), str)), None)
                if holder is None:
                    continue
                reference = [f"original's {_label(k[len(ORIGINAL_PREFIX):])}: {_fmt(v)}"
                             for k, v in holder.extra.items() if k.startswith(ORIGINAL_PREFIX)
                             and isinstance(v, (int, float)) and not isinstance(v, bool)]
                view.cells[column] = CellView(holder.extra[column + IMAGE_SUFFIX], reference)
            turns.append(view)
        columns = [MODE_LABELS.get(m, m) for m in modes] + extra_columns
        views.append(DialogueView(dialogue_id, originals.get(dialogue_id), columns, turns))
    return views


# --- Markdown (the subset the summary tables use) -> HTML ----------------------------------------------

def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def markdown_to_html(text: str) -> str:
    """Tables (`| a | b |` with a `|---|` line), `- ` lists and paragraphs; everything else is escaped text."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip())
    for block in blocks:
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if lines and all(line.lstrip().startswith("|") for line in lines):
            cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
            has_header = len(cells) > 1 and all(re.fullmatch(r":?-+:?", c) for c in cells[1])
            head, body = (cells[0], cells[2:]) if has_header else (None, cells)
            parts = ["<table class=\"summary\">"]
            if head:
                parts.append("<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>")
            parts.append("<tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                                             for row in body) + "</tbody></table>")
            out.append("".join(parts))
        elif lines and all(line.startswith("- ") for line in lines):
            out.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>")
        elif lines:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


# --- the page ------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #141414; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: .3em; }
.meta, .muted { color: #666; font-size: .9em; }
table.summary { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
table.summary th { background: #f3f3f3; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: .6em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e4e4e4; }
figcaption { font-size: .85em; color: #555; }
table.sheet { border-collapse: collapse; margin-top: .4em; }
table.sheet th { text-align: left; font-weight: 600; padding: .3em .5em; background: #f3f3f3; }
table.sheet td { vertical-align: top; padding: .4em .5em; border-top: 1px solid #e4e4e4; }
td.request { width: 16em; font-size: .9em; }
td.request .user { font-weight: 600; } td.request .state { color: #1f5fa8; } td.request .reply { color: #555; }
td.edit ul { list-style: none; padding: 0; margin: .3em 0 0; font-size: .8em; max-width: 180px; }
td.edit li { margin: .1em 0; overflow-wrap: anywhere; }
img.face { width: 160px; height: 160px; display: block; background: #eee; }
img.pixelated { image-rendering: pixelated; }
.missing { width: 160px; height: 160px; background: #eee; color: #888; display: flex; align-items: center;
           justify-content: center; font-size: .85em; }
nav a { margin-right: .6em; }
"""


def _url(relative: str) -> str:
    """A relative file path as an attribute value (characters such as '#', '?' or '%' in ids percent-encoded)."""
    return html.escape(urllib.parse.quote(relative))


def _face(root: Path, relative: str | None, alt: str) -> str:
    """An <img> of a face picture (pixelated when smaller than the display size), or a grey 'no image' box."""
    if not relative or not (root / relative).is_file():
        return '<div class="missing">no image</div>'
    from PIL import Image

    with Image.open(root / relative) as image:
        small = image.width < DISPLAY_PX
    css = "face pixelated" if small else "face"
    return f'<img class="{css}" src="{_url(relative)}" alt="{html.escape(alt)}">'


def _dialogue_html(view: DialogueView, root: Path, sheet: str | None) -> str:
    anchor = "d-" + re.sub(r"[^A-Za-z0-9_-]", "_", view.dialogue_id)
    parts = [f'<article id="{anchor}"><h3>{html.escape(view.dialogue_id)}</h3>']
    if sheet:
        parts.append(f'<p class="muted"><a href="{_url(sheet)}">contact sheet as PNG</a></p>')
    parts.append('<table class="sheet"><thead><tr><th>turn</th><th>request</th>'
                 + "".join(f"<th>{html.escape(c)}</th>" for c in view.columns) + "</tr></thead><tbody>")
    parts.append(f'<tr><td>0</td><td class="request">original photo</td><td class="edit" colspan="{len(view.columns)}">'
                 f'{_face(root, view.original, f"{view.dialogue_id}: original")}</td></tr>')
    for turn in view.turns:
        request = []
        if turn.user:
            request.append(f'<div class="user">“{html.escape(turn.user)}”</div>')
        request.append(f'<div class="state">{html.escape(turn.state) or "<em>empty state</em>"}</div>')
        if turn.reply:
            request.append(f'<div class="reply">↳ {html.escape(turn.reply)}</div>')
        cells = []
        for column in view.columns:
            cell = turn.cells.get(column)
            if cell is None:
                cells.append('<td class="edit"></td>')
                continue
            lines = "".join(f"<li>{html.escape(line)}</li>" for line in cell.lines)
            cells.append(f'<td class="edit">{_face(root, cell.image, f"{view.dialogue_id} turn {turn.turn}: {column}")}'
                         f"<ul>{lines}</ul></td>")
        parts.append(f'<tr><td>{turn.turn}</td><td class="request">{"".join(request)}</td>{"".join(cells)}</tr>')
    parts.append("</tbody></table></article>")
    return "\n".join(parts)


def write_report(out_dir: str | Path, records: Sequence[Any], title: str, summary_markdown: str = "",
                 originals: Mapping[str, str] | None = None, notes: Iterable[str] = (),
                 modes: Sequence[str] | None = None, sheets: bool = True, sheet_cell_px: int = 160) -> Path:
    """Write `out_dir/report.html` with its plots and contact sheets (see the module docstring).

    Args:
        out_dir: the run's output folder; record `image_file`s, `originals` and `*_image` fields are relative to it.
        records: `editing.evaluation.evaluate.TurnRecord`s (or objects with the same fields), in dialogue order.
        title: the page's heading.
        summary_markdown: the table block (e.g. `EditingEvaluation.to_markdown()`), shown first.
        originals: dialogue id -> the original photo's file.
        notes: extra lines listed under the summary (e.g. entries that failed).
        modes: the modes to plot, in order (default: as they appear in the records).
        sheets: False leaves out the contact sheets (for runs that saved no images).
        sheet_cell_px: picture size in the PNG contact sheets.

    Returns the path of the HTML file.
    """
    root = Path(out_dir)
    assets = root / ASSETS_DIR
    modes = list(modes) if modes is not None else list(dict.fromkeys(r.mode for r in records))
    plots, missing = write_plots(records, modes, assets / "plots", root) if records else ([], [])
    views = dialogue_views(records, originals) if sheets else []
    sheet_files: dict[str, str] = {}
    if views:
        (assets / "sheets").mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(views):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", view.dialogue_id) or f"dialogue-{i + 1}"
        path = assets / "sheets" / f"{name}.png"
        render_contact_sheet(view, root, sheet_cell_px).save(path)
        sheet_files[view.dialogue_id] = path.relative_to(root).as_posix()

    written = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">Written {html.escape(written)}; {len(dict.fromkeys(r.dialogue_id for r in records))} '
            "dialogues, "
            f"{len(records)} edits, modes: {html.escape(', '.join(MODE_LABELS.get(m, m) for m in modes) or 'none')}."
            "</p>",
            '<nav><a href="#summary">Summary</a><a href="#by-turn">By turn</a><a href="#dialogues">Dialogues</a></nav>',
            '<section id="summary"><h2>Summary</h2>', markdown_to_html(summary_markdown)]
    notes = list(notes)
    if notes:
        body.append("<ul>" + "".join(f"<li>{_inline(n)}</li>" for n in notes) + "</ul>")
    body.append("</section>")
    body.append('<section id="by-turn"><h2>By turn</h2><div class="plots">')
    body += [f'<figure><img src="{_url(p.file)}" alt="{html.escape(p.title)}">'
             f"<figcaption>{html.escape(p.title)}: mean over the dialogues with a value at each turn.</figcaption>"
             "</figure>" for p in plots]
    body.append("</div>")
    if not records:
        body.append('<p class="muted">No edits in this run.</p>')
    by_reason: dict[str, list[str]] = {}
    for key in missing:
        by_reason.setdefault(NOT_MEASURED.get(key, "no values"), []).append(PLOTTED_METRICS[key][0].split(" (")[0])
    if by_reason:
        body.append("<p class=\"muted\">Not measured in this run: " + "; ".join(
            f"{html.escape(' and '.join(names).capitalize())}: {_inline(reason)}"
            for reason, names in by_reason.items())
            + ".</p>")
    body.append("</section>")
    body.append('<section id="dialogues"><h2>Dialogues</h2>')
    if not sheets:
        body.append('<p class="muted">No contact sheets: this run saved no images.</p>')
    body += [_dialogue_html(view, root, sheet_files.get(view.dialogue_id)) for view in views]
    body.append("</section>")
    page = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    path = root / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d plots, %d contact sheets)", path, len(plots), len(sheet_files))
    return path
