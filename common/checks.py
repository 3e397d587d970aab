"""Checks every format shares, so that a parse ends in a canonical record or an ``InvalidEvent``
with a reason, never in another exception: times whose conversion to UTC overflows, JSON nested
past what a recursive decoder (and PostgreSQL's reader behind the query API) can take, and text
PostgreSQL cannot store (NUL; lone UTF-16 surrogates, which UTF-8 cannot even encode)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from common.errors import InvalidEvent

# Levels of arrays and objects in one event, the event itself included. Far past any real
# payload, far below the ~1,000 frames where Python's (and so msgspec's and psycopg's) JSON
# readers give up.
MAX_DEPTH = 64
# A ``\u`` escape of a UTF-16 surrogate: only these can put a lone surrogate into decoded text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")

R = TypeVar("R")
In = TypeVar("In")


def in_utc(ts: datetime, field: str) -> datetime:
    """``ts`` in UTC (naive: taken as UTC). Near year 1 or 9999 the conversion can leave the
    range of ``datetime``: that is the sender's bad timestamp, not GEP's crash."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(
            "bad_timestamp", f"{field}={ts.isoformat()} is out of range in UTC", field=field
        ) from None


def too_deep(detail: str = "JSON nested deeper than the decoder allows") -> InvalidEvent:
    return InvalidEvent("too_deep", detail)


def bounded(parse: Callable[[In, datetime], R]) -> Callable[[In, datetime], R]:
    """``parse`` with nesting too deep for the decoder (RecursionError) as a rejection."""

    def guarded(value: In, received_at: datetime) -> R:
        try:
            return parse(value, received_at)
        except RecursionError:
            raise too_deep() from None

    guarded.__doc__ = parse.__doc__
    return guarded


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character"
    if not text.isascii() and _SURROGATE.search(text):
        return "a lone UTF-16 surrogate"
    return None


def may_hold_nul(raw: bytes) -> bool:
    """Whether text decoded from the JSON ``raw`` can hold a NUL: only through ``\\u0000`` (a raw
    control character is not JSON)."""
    return b"\\u0000" in raw


def check_json(value: Any, raw: bytes, field: str, depth: int) -> None:
    """Depth and text of ``value``, decoded from (a part of) ``raw`` at level ``depth``; raises
    naming the field at fault. Cheap when ``raw`` cannot hold a fault: with fewer brackets than
    the limit nothing is too deep, and without ``may_hold_nul`` no text holds a NUL."""
    if raw.count(b"[") + raw.count(b"{") < MAX_DEPTH and not may_hold_nul(raw):
        return
    walk(value, field, depth)


def walk(value: Any, field: str, depth: int) -> None:
    """Raise for the first too deep container or unstorable text in ``value`` (at ``field``,
    at level ``depth``; a top-level value has field "" and depth 1)."""
    stack: list[tuple[Any, str, int]] = [(value, field, depth)]
    while stack:
        v, path, d = stack.pop()
        if isinstance(v, str):
            if (why := _unstorable(v)) is not None:
                raise InvalidEvent(
                    "unstorable_text", f"{path or 'the value'} holds {why}", field=path or None
                )
            continue
        if not isinstance(v, dict | list):
            continue
        if d > MAX_DEPTH:
            raise too_deep(f"{path} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            for k, item in v.items():
                if (why := _unstorable(k)) is not None:
                    where = f"a key in {path}" if path else "a top-level key"
                    raise InvalidEvent(
                        "unstorable_text", f"{where} holds {why}", field=path or None
                    )
                stack.append((item, f"{path}.{k}" if path else k, d + 1))
        else:
            stack.extend((item, f"{path}[{i}]", d + 1) for i, item in enumerate(v))


def explain_undecodable(raw: bytes) -> None:
    """msgspec refuses a lone surrogate escape with a puzzling "truncated" message; when that is
    what the text holds, raise the rejection that names the field instead."""
    if not _SURROGATE_ESCAPE.search(raw):
        return
    try:
        value = json.loads(raw)  # the stdlib keeps lone surrogates, so the walk can find them
    except (ValueError, RecursionError):
        return
    walk(value, "", 1)
