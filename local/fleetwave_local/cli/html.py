"""The few HTML pieces the report is built of: escaping, tables, links. Every text goes through ``escape``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def link(url: str, text: str = "output") -> str:
    """A link to a console page; anything but an https URL is shown as text, never followed."""
    if not url.startswith("https://"):
        return escape(url)
    return f'<a href="{escape(url)}" rel="noreferrer">{escape(text)}</a>'


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (), html: Sequence[int] = ()
) -> str:
    """A table; columns in ``html`` hold markup already escaped (links), every other cell is escaped here."""

    def cell(tag: str, index: int, value: Any) -> str:
        css = ' class="num"' if index in numeric else ""
        return f"<{tag}{css}>{value if index in html and tag == 'td' else escape(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
