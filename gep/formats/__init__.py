"""One module per raw event format. Each exposes ``NAME`` (also the value of the ``da-format``
header that names it), ``looks_like(obj)`` (shape detection for messages without the header) and
``parse(value, received_at)``, which returns the canonical events in the raw message or raises
``InvalidEvent`` naming the field and what was wrong. Adding a format: one module, one line in
``FORMATS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from common.events import CanonicalEvent
from gep.formats import proctoring, web


@dataclass(frozen=True)
class Format:
    name: str
    looks_like: Callable[[object], bool]
    parse: Callable[[bytes | None, datetime], list[CanonicalEvent]]


FORMATS: tuple[Format, ...] = (
    Format(proctoring.NAME, proctoring.looks_like, proctoring.parse),
    Format(web.NAME, web.looks_like, web.parse),
)
BY_NAME = {f.name: f for f in FORMATS}
