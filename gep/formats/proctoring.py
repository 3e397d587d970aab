"""Proctoring events, as exported by the proctoring platform to CSV and replayed by ``da emit``.

A raw event is a JSON object of the CSV columns: ``id``, ``type`` (``Event::<Name>``),
``fulfillment_id``, ``created_at`` (``YYYY-MM-DD HH:MM:SS[.ffffff]``, UTC unless an offset is
given) and optionally ``created_by_id``; every other column is carried in ``attributes``.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from common.checks import in_utc, may_hold_nul
from common.errors import InvalidEvent
from common.events import CanonicalEvent

NAME = "proctoring.csv"
_TYPE_RE = re.compile(r"^Event::[A-Za-z][A-Za-z0-9]*$")
_Scalar = str | int | float | bool | None
_decoder = msgspec.json.Decoder(dict[str, _Scalar])
_MAX_ID = 200
# The columns a canonical event has fields for; every other one is an attribute.
_COLUMNS = frozenset(("id", "type", "fulfillment_id", "created_at", "created_by_id"))


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and "fulfillment_id" in obj and "type" in obj


def parse(value: bytes | None, received_at: datetime) -> list[CanonicalEvent]:
    row = decode(value)
    return [to_canonical(row, received_at, nul_free=not may_hold_nul(value or b""))]


def decode(value: bytes | None) -> dict[str, _Scalar]:
    if not value:
        raise InvalidEvent("empty", "the event has no body")
    try:
        return _decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(
            "not_flat_object", f"expected a JSON object of scalar values: {exc}"
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent("bad_json", str(exc)) from None


def _text(row: dict[str, _Scalar], name: str, *, required: bool) -> str | None:
    raw = row.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidEvent("missing_field", f"{name} is missing or empty", field=name)
        return None
    if isinstance(raw, bool | float):
        raise InvalidEvent("bad_type", f"{name} must be a string or an integer", field=name)
    text = str(raw).strip()
    if "\x00" in text:
        raise InvalidEvent("bad_value", f"{name} contains a NUL character", field=name)
    if not text or len(text) > _MAX_ID:
        raise InvalidEvent("bad_value", f"{name} must be 1..{_MAX_ID} characters", field=name)
    return text


def parse_time(raw: str, name: str = "created_at") -> datetime:
    try:
        ts = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidEvent(
            "bad_timestamp", f"{name}={raw!r} is not YYYY-MM-DD HH:MM:SS[.ffffff]", field=name
        ) from None
    return in_utc(ts, name)


def _required(row: dict[str, _Scalar], name: str) -> str:
    text = _text(row, name, required=True)
    return text if text is not None else ""  # _text raised already when it was missing


def to_canonical(
    row: dict[str, _Scalar], received_at: datetime, *, nul_free: bool = False
) -> CanonicalEvent:
    event_id = _required(row, "id")
    event_type = _required(row, "type")
    fulfillment_id = _required(row, "fulfillment_id")
    created_at = _required(row, "created_at")
    if not _TYPE_RE.match(event_type):
        raise InvalidEvent(
            "bad_event_type", f"type={event_type!r} is not Event::<Name>", field="type"
        )
    if not nul_free:  # ``common.checks.may_hold_nul`` said a column might hold one
        for k, v in row.items():
            if "\x00" in k or (isinstance(v, str) and "\x00" in v):
                # PostgreSQL text cannot hold NUL; no downstream store could keep this event.
                raise InvalidEvent("bad_value", f"column {k!r} contains a NUL character", field=k)
    attributes = {
        k: v if type(v) is str else msgspec.json.encode(v).decode()
        for k, v in row.items()
        if k not in _COLUMNS and v is not None and v != ""
    }
    # Positional: a struct built from keywords costs a third more.
    return CanonicalEvent(
        event_id,
        NAME,
        event_type,
        "fulfillment",
        fulfillment_id,
        parse_time(created_at),
        received_at,
        _text(row, "created_by_id", required=False),
        attributes,
    )
