"""One section of ``kcompile report``'s page: what each part of the report hands the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """``key`` is the section's HTML id (``graphs``, ``passes``, ``memory``, ``profile``,
    ``model``); ``html`` a fragment that needs nothing outside the page (inline SVG,
    tables; scripts only through ``script``); ``data`` the numbers behind its pictures,
    JSON-able, embedded in the page for scripts and tests to read; ``script`` JavaScript
    the page runs once it has loaded (it sees ``KC.data[key]`` and ``KC.show(detail)``)."""

    key: str
    title: str
    html: str
    data: dict[str, Any] = field(default_factory=dict)
    script: str = ""
