"""Web and mobile events as the HTTP collector puts them on the ingest topic.

The record's shape and checks live in ``common.web_post`` (the collector runs the same ones);
this module turns a record into its canonical event.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from common import checks
from common.errors import InvalidEvent
from common.events import CanonicalEvent
from common.web_post import (
    ENTITY,
    NAME,
    check,
    decode_event,
    encoded_data,
    envelope_decoder,
    event_id,
)

__all__ = ["ENTITY", "NAME", "looks_like", "parse"]


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and "app" in obj and "received_at" in obj and "event" in obj


def parse(value: bytes | None, received_at: datetime) -> list[CanonicalEvent]:
    """GEP: the collector's record to one canonical event. ``received_at`` (GEP's clock) is
    ignored: the collector's receipt time is the one that means something to the sender."""
    if not value:
        raise InvalidEvent("empty", "the event has no body")
    try:
        env = envelope_decoder.decode(value)
    except RecursionError:
        raise checks.too_deep() from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        checks.explain_undecodable(value)
        raise InvalidEvent("bad_envelope", f"not a collector record: {exc}") from None
    raw = bytes(env.event)
    event = decode_event(raw)
    occurred_at = check(event)
    return [
        CanonicalEvent(
            event_id=event_id(env.app, raw),
            source=NAME,
            event_type=f"{event.category}/{event.name}",
            entity_type=ENTITY,
            entity_id=event.session_id,
            occurred_at=occurred_at,
            received_at=checks.in_utc(env.received_at, "received_at"),
            actor_id=env.app,
            attributes={
                "category": event.category,
                "name": event.name,
                "data": encoded_data(event).decode(),
            },
        )
    ]
