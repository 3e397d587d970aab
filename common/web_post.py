"""A web or mobile event as an application posts it, and the collector's record of it
on the ingest topic: the typed shape, the structural checks and the envelope. The collector runs
these checks at the door and GEP runs them again for records that arrive by any other road, so
the code lives here, shared, rather than in either stage.

An application posts ``{"session_id", "category", "name", "data": {...}, "timestamp"}``; the
collector produces one record per event: ``{"app": <who sent it>, "received_at": <collector
clock>, "event": <the posted object, bytes untouched>}``, keyed by session id. The event id is a
hash of the app and those bytes, so a client that resends a batch after a 503 creates no duplicate
downstream. The ``timestamp`` is ISO 8601; without an offset it is taken as UTC.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from common import checks
from common.errors import InvalidEvent

# The value of the ``da-format`` header that names this format.
NAME = "web"
ENTITY = "web_session"
_MAX_ID = 200
_MAX_LABEL = 100


class WebEvent(msgspec.Struct, frozen=True):
    """One posted event, typed. Unknown extra fields are ignored, not kept."""

    session_id: str
    category: str
    name: str
    data: dict[str, Any]
    timestamp: datetime


class Envelope(msgspec.Struct, frozen=True):
    app: str
    received_at: datetime
    event: msgspec.Raw


_event_decoder = msgspec.json.Decoder(WebEvent)
envelope_decoder = msgspec.json.Decoder(Envelope)
encoder = msgspec.json.Encoder()


def decode_event(raw: bytes) -> WebEvent:
    """Typed decode of one posted event, its payload bounded in depth and holding only text
    PostgreSQL can store; the error names the field (``data.form.name`` and the like)."""
    try:
        event = _event_decoder.decode(raw)
    except RecursionError:
        raise checks.too_deep() from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in text else None
        if field is None and "missing required field `" in text:
            field = text.rsplit("`", 2)[1]
        reason = "missing_field" if "missing required field" in text else "bad_type"
        raise InvalidEvent(reason, text, field=field) from None
    except msgspec.DecodeError as exc:
        checks.explain_undecodable(raw)
        raise InvalidEvent("bad_json", str(exc)) from None
    checks.check_json(event.data, raw, "data", 2)
    return event


def _label(value: str, field: str, limit: int) -> None:
    if not value.strip():
        raise InvalidEvent("missing_field", f"{field} is empty", field=field)
    if len(value) > limit:
        raise InvalidEvent("bad_value", f"{field} is longer than {limit} characters", field=field)
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL: no store downstream could keep this event.
        raise InvalidEvent("bad_value", f"{field} contains a NUL character", field=field)


def check(event: WebEvent) -> datetime:
    """The structural checks every web event passes, wherever it entered; returns its time in
    UTC. (Type checks happened in ``decode_event``.)"""
    _label(event.session_id, "session_id", _MAX_ID)
    _label(event.category, "category", _MAX_LABEL)
    _label(event.name, "name", _MAX_LABEL)
    if not event.data:
        raise InvalidEvent("empty_payload", "data is an empty object", field="data")
    return checks.in_utc(event.timestamp, "timestamp")


def encoded_data(event: WebEvent) -> bytes:
    """The payload as GEP passes it on: re-encoded, numbers in full."""
    return encoder.encode(event.data)


def event_id(app: str, raw: bytes) -> str:
    return hashlib.blake2b(app.encode() + b"\x00" + raw, digest_size=16).hexdigest()


def envelope(app: str, received_at: datetime, raw: bytes) -> bytes:
    return encoder.encode(Envelope(app, received_at, msgspec.Raw(raw)))
