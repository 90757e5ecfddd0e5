"""Render a report's blocks as Markdown and as self-contained HTML.

A report is a list of blocks: ``("h1"|"h2"|"h3"|"p", text)``, ``("ul", [text, ...])``,
``("table", DataFrame)`` and ``("img", file, caption)``. :func:`to_markdown` links each image file
beside the Markdown; :func:`to_html` embeds it as a ``data:image/png;base64,`` URI (no external
file, script or stylesheet). Nothing here computes or words a number of the study.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Block", "fmt", "to_markdown", "to_html"]

Block = tuple


def fmt(value: Any) -> str:
    """A cell as text: ``bn`` on/off, floats to 4 significant digits, NaN as —."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    if isinstance(value, (float, np.floating)):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _display(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text: floats to 4 significant digits, ``bn`` on/off, other booleans yes/no, NaN as —."""
    if not len(df):
        return df.astype(str)

    def column(col: pd.Series) -> pd.Series:
        if col.name != "bn" and col.dtype == bool:
            return col.map({True: "yes", False: "no"})
        return col.map(fmt)

    return df.apply(column).astype(str)


def _md_table(df: pd.DataFrame) -> str:
    shown = _display(df)
    try:
        return shown.to_markdown(index=False, disable_numparse=True)
    except ImportError:  # tabulate missing: the same pipe table by hand
        cells = [[str(c) for c in shown.columns], *shown.to_numpy().tolist()]
        esc = [[c.replace("|", "\\|") for c in row] for row in cells]
        lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in esc[0]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
        return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            parts.append(block[1])
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            parts.append(_md_table(block[1]) if len(block[1]) else "_(empty)_")
        elif kind == "img":
            parts.append(f"![{Path(block[1]).stem}]({block[1]})\n\n_{block[2]}_")
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """``text`` escaped, with Markdown's inline marks as HTML: `code`, **strong**, *emphasis*."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*(?=[^\s*])([^*]+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", text)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
body{line-height:1.45}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}figcaption{font-size:.9em;color:#555}
code{background:#f3f3f3;padding:0 .2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"""


def to_html(blocks: list[Block], folder: Path) -> str:
    title = next((b[1] for b in blocks if b[0] == "h1"), "leafbn report")
    head = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
    )
    parts = [head]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            parts.append(
                _display(block[1]).to_html(index=False, border=0, escape=True, na_rep="—")
                if len(block[1])
                else "<p><em>(empty)</em></p>"
            )
        elif kind == "img":
            data = base64.b64encode((folder / block[1]).read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(block[2])}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
