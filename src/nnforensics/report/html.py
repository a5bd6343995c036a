"""Self-contained HTML pages built from typed parts.

A page is a title plus :class:`Section` objects whose parts are :class:`Paragraph`,
:class:`Bullets`, :class:`KeyValues`, :class:`Image`, ``tables.Table`` or nested
sections. Every piece of text is escaped here, so callers never build HTML strings
and data from result files can never inject markup. Images are embedded as base64
data URIs and the CSS is inline: the file opens anywhere, offline, without
JavaScript.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

from .. import __version__
from ..utils.atomic import atomic_write_text
from .tables import Table

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5em 2em 4em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d4da; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
p.subtitle { color: #555; margin-top: 0; }
nav ul { columns: 2; padding-left: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0 0.3em; font-size: 0.92em; }
th, td { border: 1px solid #d0d4da; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f1f3f6; white-space: normal; vertical-align: bottom; }
p.lead { font-size: 1.15em; font-weight: 600; background: #eef4fb; border-left: 4px solid #3a8fd9;
         padding: 0.6em 0.9em; }
td:first-child, th:first-child { text-align: left; }
table.kv td { text-align: left; white-space: normal; }
table.kv td:first-child { font-weight: 600; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
p.note, figcaption { color: #555; font-size: 0.88em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eceef1; }
.scroll { overflow-x: auto; }
footer { margin-top: 3em; color: #888; font-size: 0.85em; }
"""


def esc(text: object) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape(str(text), quote=True)


@dataclass
class Paragraph:
    text: str
    css_class: str = ""

    def to_html(self) -> str:
        cls = f' class="{esc(self.css_class)}"' if self.css_class else ""
        return f"<p{cls}>{esc(self.text)}</p>"


@dataclass
class Bullets:
    items: Sequence[str]

    def to_html(self) -> str:
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in self.items) + "</ul>"


@dataclass
class KeyValues:
    """A two-column table of settings; non-string values are shown as JSON."""

    items: Mapping[str, Any]
    title: str = ""

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>"
            for k, v in self.items.items()
        )
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        return f'<div class="scroll"><table class="kv">{caption}{rows}</table></div>'


@dataclass
class Image:
    """An image embedded as a data URI."""

    data: bytes
    alt: str
    caption: str = ""
    mime: str = "image/png"

    @classmethod
    def from_file(cls, path: str | os.PathLike, alt: str, caption: str = "") -> "Image":
        path = Path(path)
        mime = _MIME.get(path.suffix.lower())
        if mime is None:
            raise ValueError(f"cannot embed {path.name!r}: unsupported image type")
        return cls(path.read_bytes(), alt, caption, mime)

    def to_html(self) -> str:
        uri = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        caption = f"<figcaption>{esc(self.caption)}</figcaption>" if self.caption else ""
        return f'<figure><img src="{uri}" alt="{esc(self.alt)}">{caption}</figure>'


def table_html(table: Table) -> str:
    """A :class:`tables.Table` as an HTML table (first column as row headers)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    caption = f"<caption>{esc(table.title)}</caption>" if table.title else ""
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    return f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}'


@dataclass
class Section:
    """A titled part of a page; ``parts`` are rendered in order, nested sections one heading level down."""

    title: str
    parts: list["Part"] = field(default_factory=list)
    anchor: str = ""

    def to_html(self, level: int = 2) -> str:
        anchor = f' id="{esc(self.anchor)}"' if self.anchor else ""
        inner = "".join(render_part(part, level) for part in self.parts)
        tag = f"h{min(level, 6)}"
        return f"<section{anchor}><{tag}>{esc(self.title)}</{tag}>{inner}</section>"


Part = Union[Paragraph, Bullets, KeyValues, Image, Table, Section]


def render_part(part: Part, level: int = 2) -> str:
    """HTML of one part; nested sections get the next heading level."""
    if isinstance(part, Section):
        return part.to_html(level + 1)
    if isinstance(part, Table):
        return table_html(part)
    if isinstance(part, (Paragraph, Bullets, KeyValues, Image)):
        return part.to_html()
    raise TypeError(f"cannot render {type(part).__name__} in a report; use the part types of nnforensics.report.html")


def anchor_for(text: str, used: set[str]) -> str:
    """A unique, safe id for a heading."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section"
    anchor, k = base, 2
    while anchor in used:
        anchor, k = f"{base}-{k}", k + 1
    used.add(anchor)
    return anchor


def render_html(title: str, sections: Sequence[Section], subtitle: str = "", toc: bool = True) -> str:
    """A complete HTML document (no external resources, no scripts)."""
    used: set[str] = {s.anchor for s in sections if s.anchor}
    sections = [s if s.anchor else replace(s, anchor=anchor_for(s.title, used)) for s in sections]
    nav = ""
    if toc and len(sections) > 2:
        links = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
        nav = f"<nav><ul>{links}</ul></nav>"
    sub = f'<p class="subtitle">{esc(subtitle)}</p>' if subtitle else ""
    body = "".join(section.to_html(2) for section in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{esc(title)}</h1>{sub}</header>{nav}<main>{body}</main>"
        f"<footer>nnforensics {esc(__version__)}</footer></body></html>\n"
    )


def write_html(path: str | os.PathLike, title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    """Render a page and write it atomically to ``path``; returns the path."""
    path = Path(path)
    atomic_write_text(path, render_html(title, sections, subtitle=subtitle))
    return path
