"""Gooru core-system events: a content, class or user was created, updated or deleted.

One JSON object per event (docs/formats.md)::

    {"eventId": "sys-1", "eventName": "content.created", "timestamp": 1600000000000,
     "actorId": "teacher-1",
     "data": {"id": "asmt-9", "contentType": "assessment", "parentId": null,
              "competencies": ["MA.4.NF.1"], "title": "Fractions"}}

A content's ``contentType`` is required unless it is deleted, and kept as sent
(``assessment-external`` stays ``assessment-external``); ``parentId`` is the collection or
assessment a resource or question belongs to. Each event becomes one system DE
``<entity>.<action>``, keyed by the entity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import msgspec

from common.errors import InvalidEvent
from common.events import CONTENT_FAMILIES, CanonicalEvent, Impact, SystemChange
from gep.formats import gooru_rules as r
from gep.formats.rejected import Rejected

NAME = "gooru.system"
_NAME_RE = re.compile(r"^(content|class|user)\.(created|updated|deleted)$")
Id = str | None


class Data(msgspec.Struct):
    id: Id = None
    contentType: Id = None
    parentId: Id = None
    competencies: list[str] = []
    title: Id = None


class Event(msgspec.Struct):
    eventId: Id = None
    eventName: Id = None
    timestamp: int | None = None
    actorId: Id = None
    data: Data | None = None


_decoder = msgspec.json.Decoder(Event)


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and bool(_NAME_RE.match(str(obj.get("eventName"))))


def parse(value: bytes | None, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    event = r.decode(_decoder, value)
    return [to_canonical(event, received_at)]


def to_canonical(e: Event, received_at: datetime) -> CanonicalEvent:
    event_id = r.required_id(e.eventId, "eventId")
    match = _NAME_RE.match(e.eventName or "")
    if match is None:
        raise InvalidEvent(
            "bad_value",
            f"eventName={e.eventName!r} is not <content|class|user>.<created|updated|deleted>",
            field="eventName",
        )
    entity, action = match.groups()
    data = e.data or Data()
    entity_id = r.required_id(data.id, "data.id")
    kind = None
    if entity == "content" and action != "deleted":
        if data.contentType not in CONTENT_FAMILIES:
            raise InvalidEvent(
                "bad_value",
                f"data.contentType={data.contentType!r} is not a content kind",
                field="data.contentType",
            )
        kind = data.contentType  # as sent: the family is derived where it is needed
    competencies = tuple(r.required_id(c, "data.competencies") for c in data.competencies)
    title = r.optional_id(data.title, "data.title")
    return CanonicalEvent(
        event_id=event_id,
        source=NAME,
        event_type=f"{entity}.{action}",
        entity_type=entity,
        entity_id=entity_id,
        occurred_at=r.epoch_ms(e.timestamp, "timestamp"),
        received_at=received_at,
        actor_id=r.optional_id(e.actorId, "actorId"),
        attributes={"title": title} if title else {},
        system=SystemChange(
            action, kind, r.optional_id(data.parentId, "data.parentId"), competencies
        ),
        impacts=(Impact(entity, action),),
    )
