"""The HTML report (`editing.evaluation.report`): its summary block, plots by turn, contact sheets and the optional
per-turn fields (judge verdicts, a true target picture and its distances) that the demo world adds."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from editing.evaluation.contact_sheet import render_contact_sheet
from editing.evaluation.evaluate import TurnRecord
from editing.evaluation.report import dialogue_views, markdown_to_html, write_report

SUMMARY = """Editing evaluation: 2 dialogues.

| Editing mode | MinRel ↑ | AvgRel ↑ |
|---|---|---|
| Multi-turn | 0.500 | 0.600 |

Notes:

- fid skipped: no `pt_inception` file
"""


class ImageSources(HTMLParser):
    """Collects every <img src> and <a href> of a page."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a" and not attrs.get("href", "#").startswith("#"):
            self.links.append(attrs["href"])


def page_sources(html_path: Path) -> ImageSources:
    parser = ImageSources()
    parser.feed(html_path.read_text(encoding="utf-8"))
    return parser


def _image(root: Path, relative: str, colour, size=32) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return relative


def _records(root: Path, with_judge: bool) -> tuple[list[TurnRecord], dict[str, str]]:
    """Two dialogues of two turns in both modes; with the judge's verdicts and a true target when asked."""
    records, originals = [], {}
    for d, dialogue_id in enumerate(("d1", "d2")):
        originals[dialogue_id] = _image(root, f"images/original/{dialogue_id}.png", (200, 150, 120))
        for mode_index, mode in enumerate(("multi", "single")):
            for turn in (1, 2):
                state = {"expression": ["smiling"]} if turn == 1 else {"expression": ["smiling"], "beard": ["goatee"]}
                extra = {}
                if with_judge:
                    target = _image(root, f"targets/{dialogue_id}-t{turn}.png", (0, 200, 0))
                    extra = {"success": turn == 1 or mode == "multi", "marginal_success": True,
                             "judge_values": ["smiling"], "target_image": target,
                             "target_l1": 0.1 * turn + 0.05 * mode_index, "original_target_l1": 0.4,
                             "verdicts": {"smiling": True, "goatee": turn == 1}}
                records.append(TurnRecord(
                    dialogue_id=dialogue_id, turn=turn, mode=mode, state=state, text="a face of a person with a smile",
                    avg_rel=0.3 + 0.1 * turn, min_rel=0.2 + 0.05 * turn, per_attribute={"smiling": 0.3 + 0.1 * turn},
                    identity=0.9 - 0.1 * turn, lpips=None, steps=2, seconds=0.1,
                    image_file=_image(root, f"images/{mode}/{dialogue_id}-t{turn}.png", (40 * turn, 80, 40 * d)),
                    extra=extra, user="make her smile" if turn == 1 else "and a goatee", reply="Done."))
    return records, originals


def test_markdown_summary_becomes_tables_lists_and_escaped_text():
    page = markdown_to_html(SUMMARY + "\n<script>alert(1)</script>\n")
    assert "<table class=\"summary\"><thead><tr><th>Editing mode</th><th>MinRel ↑</th>" in page
    assert "<tbody><tr><td>Multi-turn</td><td>0.500</td><td>0.600</td></tr></tbody>" in page
    assert "<li>fid skipped: no <code>pt_inception</code> file</li>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_report_holds_summary_plots_and_one_sheet_per_dialogue(tmp_path):
    records, originals = _records(tmp_path, with_judge=False)
    path = write_report(tmp_path, records, "A run", SUMMARY, originals, notes=["entry 3 failed: no face"])
    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")
    sources = page_sources(path)
    assert all((tmp_path / src).is_file() for src in sources.images + sources.links)
    plots = sorted(src for src in sources.images if src.startswith("report/plots/"))
    assert plots == ["report/plots/avg_rel.png", "report/plots/identity.png", "report/plots/min_rel.png"]
    # every edit, once per mode, and each dialogue's original
    assert {f"images/{m}/{d}-t{t}.png" for m in ("multi", "single") for d in ("d1", "d2") for t in (1, 2)} | {
        "images/original/d1.png", "images/original/d2.png"} <= set(sources.images)
    assert sources.links == ["report/sheets/d1.png", "report/sheets/d2.png"]
    assert "<td>Multi-turn</td>" in html and "entry 3 failed: no face" in html
    assert "Not measured in this run: Success and marginal success: these need an attribute judge" in html
    assert "“and a goatee”" in html and "expression: smiling; beard: goatee" in html
    assert "AvgRel 0.500  MinRel 0.300" in html and "smiling 0.500" in html and "identity 0.700" in html
    # small pictures are enlarged without smoothing
    assert re.search(r'<img class="face pixelated" src="images/multi/d1-t1.png"', html)
    with Image.open(tmp_path / "report/sheets/d1.png") as sheet:
        assert sheet.width > 2 * 160 and sheet.height > 3 * 160  # text column + 2 modes; original + 2 turns


def test_optional_judge_and_target_fields_are_plotted_and_shown(tmp_path):
    records, originals = _records(tmp_path, with_judge=True)
    path = write_report(tmp_path, records, "Demo world", SUMMARY, originals)
    html = path.read_text(encoding="utf-8")
    sources = page_sources(path)
    assert {"report/plots/success.png", "report/plots/marginal_success.png",
            "report/plots/target_l1.png"} <= set(sources.images)
    assert "Not measured" not in html
    assert "targets/d1-t2.png" in sources.images  # the target column
    assert "<th>target</th>" in html and "original&#x27;s target l1: 0.400" in html
    assert "success: yes" in html and "judge sees: smiling" in html and "target l1: 0.250" in html
    assert "critic: smiling yes, goatee no" in html


def test_dialogue_views_put_modes_side_by_side_and_target_last(tmp_path):
    records, originals = _records(tmp_path, with_judge=True)
    views = dialogue_views(records, originals)
    assert [v.dialogue_id for v in views] == ["d1", "d2"]
    view = views[0]
    assert view.columns == ["multi-turn", "single-turn", "target"]
    assert view.original == "images/original/d1.png"
    assert [t.turn for t in view.turns] == [1, 2]
    second = view.turns[1]
    assert second.user == "and a goatee" and second.state == "expression: smiling; beard: goatee"
    assert second.cells["single-turn"].image == "images/single/d1-t2.png"
    assert "success: no" in second.cells["single-turn"].lines
    assert second.cells["target"].image == "targets/d1-t2.png"


def test_contact_sheet_marks_a_missing_picture(tmp_path):
    records, originals = _records(tmp_path, with_judge=False)
    (tmp_path / "images/single/d1-t2.png").unlink()
    view = dialogue_views(records, originals)[0]
    sheet = render_contact_sheet(view, tmp_path, cell=64)
    assert sheet.mode == "RGB" and sheet.width >= 240 + 2 * 64
    html = write_report(tmp_path, records, "gap", SUMMARY, originals).read_text(encoding="utf-8")
    assert html.count('<div class="missing">no image</div>') == 1


def test_odd_dialogue_ids_still_link_their_pictures(tmp_path):
    from urllib.parse import unquote

    records, originals = _records(tmp_path, with_judge=False)
    odd = "d#1 ?%"
    for record in records:
        if record.dialogue_id == "d1":
            record.dialogue_id = odd
            record.image_file = _image(tmp_path, f"images/{record.mode}/{odd}-t{record.turn}.png", (9, 9, 9))
    originals = {odd: _image(tmp_path, f"images/original/{odd}.png", (1, 2, 3)), "d2": originals["d2"]}
    path = write_report(tmp_path, records, "odd", SUMMARY, originals)
    html = path.read_text(encoding="utf-8")
    sources = page_sources(path)
    assert "images/original/d%231%20%3F%25.png" in sources.images and "<h3>d#1 ?%</h3>" in html
    assert all((tmp_path / unquote(src)).is_file() for src in sources.images + sources.links)
    assert "report/sheets/d_1___.png" in sources.links  # the PNG sheet gets a safe file name


def test_report_without_sheets_says_so(tmp_path):
    records, _ = _records(tmp_path, with_judge=False)
    html = write_report(tmp_path, records, "no images", SUMMARY, sheets=False).read_text(encoding="utf-8")
    assert "No contact sheets: this run saved no images." in html
    assert not (tmp_path / "report" / "sheets").exists()


def test_a_run_without_edits_still_gets_a_page(tmp_path):
    html = write_report(tmp_path, [], "nothing ran", SUMMARY, notes=["entry 1 failed: no face"]).read_text("utf-8")
    assert "No edits in this run." in html and "entry 1 failed: no face" in html and "<img" not in html
