"""Markdown and self-contained HTML from report blocks."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd

from leafbn.report.render import fmt, to_html, to_markdown

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def blocks() -> list:
    table = pd.DataFrame(
        {"bn": [True, False], "lr": [0.1, 1.0], "loss": [0.123456, math.nan], "ok": [True, False]}
    )
    return [
        ("h1", "Title <b>"),
        ("p", "Some `code` & text"),
        ("ul", ["one", "two"]),
        ("table", table),
        ("img", "fig.png", "How to read it."),
    ]


def test_fmt():
    assert fmt(True) == "on" and fmt(np.bool_(False)) == "off"
    assert fmt(0.123456) == "0.1235" and fmt(math.nan) == "—" and fmt(3) == "3"


def test_markdown():
    md = to_markdown(blocks())
    assert md.startswith("# Title <b>\n\nSome `code` & text\n\n- one\n- two\n")
    assert re.search(r"\| on +\| 0\.1 +\| 0\.1235 +\| yes +\|", md)  # bn on/off, 4 digits, yes/no
    assert re.search(r"\| off +\| 1 +\| — +\| no +\|", md)  # NaN as a dash
    assert "![fig](fig.png)\n\n_How to read it._" in md


def test_html_is_self_contained_and_escaped(tmp_path):
    (tmp_path / "fig.png").write_bytes(PNG)
    page = to_html(blocks(), tmp_path)
    assert page.startswith("<!DOCTYPE html>") and "<title>Title &lt;b&gt;</title>" in page
    assert "<code>code</code> &amp; text" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "<figcaption>How to read it.</figcaption>" in page
    assert 'src="fig.png"' not in page  # the image is embedded, not linked
    assert "http" not in page and "<script" not in page


def test_html_shows_markdown_marks_as_emphasis_not_asterisks(tmp_path):
    text = "**Verdict: BN more robust** — a run *trains* when `a*b` < 2 * 3"
    page = to_html([("p", text)], tmp_path)
    assert "<strong>Verdict: BN more robust</strong>" in page
    assert "<em>trains</em>" in page and "<code>a*b</code>" in page
    assert "2 * 3" in page  # a lone asterisk between spaces stays as written
