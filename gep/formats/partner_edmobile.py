"""EdMobile, an example partner whose format differs: its activity records are mapped
to the global usage format (log API 3.0) and then validated and normalized exactly like it.

The format is documented in docs/formats.md. One record describes one finished activity; a
quiz or lesson also stands for the start of its play (an event of its own, so that starts and
views count as for the platform's own clients), and a rating becomes a reaction event. Adding
a partner is one module like this one and a line in ``gep.formats.FORMATS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from common.epoch import to_ms
from common.errors import InvalidEvent
from common.events import CanonicalEvent
from gep.formats import gooru_logapi as logapi
from gep.formats import gooru_rules as r
from gep.formats.rejected import Rejected

NAME = "partner.edmobile"
PARTNER = "edmobile"
# EdMobile's kinds of item -> (global event name, resourceType or collectionType)
KINDS = {
    "video": ("collection.resource.play", "resource"),
    "reading": ("collection.resource.play", "resource"),
    "quiz-item": ("collection.resource.play", "question"),
    "quiz": ("collection.play", "assessment"),
    "lesson": ("collection.play", "collection"),
}
OUTCOMES = {"right": "correct", "wrong": "incorrect", "skipped": "skipped"}
Id = str | None


class Activity(msgspec.Struct):
    partner: Id = None
    activityId: Id = None
    learnerRef: Id = None
    kind: Id = None
    itemRef: Id = None
    quizRef: Id = None  # the quiz or lesson an item was played in
    classRef: Id = None
    startedAt: datetime | None = None  # ISO 8601 with offset
    finishedAt: datetime | None = None
    outcome: Id = None
    percent: float | None = None  # a quiz's score
    rating: int | None = None  # 1..5 stars


_decoder = msgspec.json.Decoder(Activity)


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("partner") == PARTNER


def parse(value: bytes | None, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    activity = r.decode(_decoder, value)
    return [logapi.to_canonical(e, received_at) for e in to_global(activity)]


def _ms(at: datetime | None, field: str) -> int:
    if at is None or at.tzinfo is None:
        raise InvalidEvent("bad_timestamp", f"{field} needs a date, time and offset", field=field)
    return to_ms(at)


def to_global(a: Activity) -> list[logapi.Event]:
    """The log API 3.0 events an activity stands for."""
    activity_id = r.required_id(a.activityId, "activityId")
    learner = r.required_id(a.learnerRef, "learnerRef")
    item = r.required_id(a.itemRef, "itemRef")
    if a.kind not in KINDS:
        raise InvalidEvent(
            "bad_value", f"kind={a.kind!r} is not one of {', '.join(KINDS)}", field="kind"
        )
    if a.outcome is not None and a.outcome not in OUTCOMES:
        raise InvalidEvent("bad_value", f"outcome={a.outcome!r} is unknown", field="outcome")
    event_name, kind = KINDS[a.kind]
    on_item = event_name == "collection.resource.play"
    context = logapi.Context(
        type="stop",
        contentGooruId=item,
        parentGooruId=a.quizRef if on_item else None,
        classGooruId=a.classRef,
        collectionType=("assessment" if a.quizRef else None) if on_item else kind,
        resourceType=kind if on_item else None,
        partnerId=PARTNER,
    )
    play = logapi.Event(
        eventId=activity_id,
        eventName=event_name,
        session=logapi.Session(sessionId=activity_id),
        startTime=_ms(a.startedAt, "startedAt"),
        endTime=_ms(a.finishedAt, "finishedAt"),
        user=logapi.User(gooruUId=learner),
        context=context,
        metrics=logapi.Metrics(score=a.percent),
        payLoadObject=logapi.Payload(answerStatus=OUTCOMES.get(a.outcome or "")),
    )
    events = [play]
    if not on_item:  # the play of a whole quiz or lesson began at startedAt: its start counts
        start = msgspec.structs.replace(context, type="start")
        events.insert(
            0,
            msgspec.structs.replace(
                play, eventId=f"{activity_id}:start", endTime=None, context=start, metrics=None
            ),
        )
    if a.rating is not None:
        events.append(
            logapi.Event(
                eventId=f"{activity_id}:rating",
                eventName="reaction.create",
                startTime=play.endTime,
                user=play.user,
                context=msgspec.structs.replace(context, type=None, reactionType=a.rating),
            )
        )
    return events
