"""One module per raw event format. Each exposes ``NAME`` (also the value of the ``da-format``
header that names it), ``looks_like(obj)`` (shape detection for messages without the header) and
``parse(value, received_at)`` (or, for a format that needs the message's place or broker time,
``parse_message(msg, received_at)``), which returns the canonical events in the raw message
(and, for a message of several events, a ``Rejected`` for each invalid one) or raises
``InvalidEvent`` naming the field and what was wrong. Adding a format: one module, one line in
``FORMATS``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from common import checks
from common.events import CanonicalEvent
from common.runloop import Message
from gep.formats import (
    gooru_logapi,
    gooru_logwriter,
    gooru_system,
    partner_edmobile,
    proctoring,
    web,
    xtss,
)
from gep.formats.rejected import Rejected


@dataclass(frozen=True)
class Format:
    name: str
    looks_like: Callable[[object], bool]
    parse: Callable[[bytes | None, datetime], Sequence[CanonicalEvent | Rejected]]
    parse_message: Callable[[Message, datetime], Sequence[CanonicalEvent | Rejected]] | None = None


# ``bounded``: JSON nested too deep for the decoder is a rejection, in every format.
FORMATS: tuple[Format, ...] = tuple(
    Format(
        m.NAME,
        m.looks_like,
        checks.bounded(m.parse),
        checks.bounded(m.parse_message) if hasattr(m, "parse_message") else None,
    )
    for m in (proctoring, gooru_logapi, gooru_logwriter, gooru_system, partner_edmobile, web, xtss)
)
BY_NAME = {f.name: f for f in FORMATS}
