"""Gooru client usage events, log API 3.0 (docs/formats.md).

The body is a JSON array of events, or one event. Each element is validated on its own: the
valid ones go on, and an invalid one comes back as a ``Rejected`` with its index, which GEP
dead-letters with the whole original message and the index in a header. Dead-lettering the
whole array for one bad element would throw away a session's good events (one bad element is
usually one buggy widget); sending only the bad element's bytes would not be the original
message. A message whose elements are all invalid is dead-lettered once, as a whole.

Rules (the platform's own parser): time spent = endTime - startTime in integer milliseconds,
counted on ``stop`` only, clamped to 0..2 h with the reported value kept; a question's score is
100 % for ``correct``, 0 % for ``incorrect`` / ``attempted``; the start of a collection or an
assessment counts a start, a collection counts a view on ``start``, an assessment on ``stop``
(``gooru_rules``: one rule per metric for every format); missing ``context``,
``payLoadObject``, ``metrics`` or ``session`` mean empty; missing ``isStudent`` means true.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from common.epoch import from_ms
from common.errors import InvalidEvent
from common.events import CanonicalEvent, Impact, Usage, UsageMetrics
from gep.formats import gooru_rules as r
from gep.formats.rejected import Rejected

NAME = "gooru.logapi"
EVENT_NAMES = ("collection.play", "collection.resource.play", "resource.play", "reaction.create")
Id = str | None


class Session(msgspec.Struct):
    apiKey: Id = None
    sessionId: Id = None


class User(msgspec.Struct):
    gooruUId: Id = None


class Context(msgspec.Struct):
    type: Id = None
    contentGooruId: Id = None
    parentGooruId: Id = None
    parentEventId: Id = None
    classGooruId: Id = None
    courseGooruId: Id = None
    unitGooruId: Id = None
    lessonGooruId: Id = None
    collectionType: Id = None
    resourceType: Id = None
    reactionType: int | str | None = None
    questionCount: int | None = None
    clientSource: Id = None
    pathId: int | str | None = None
    tenantId: Id = None
    partnerId: Id = None


class Metrics(msgspec.Struct):
    score: float | None = None
    totalTimeSpentInMs: int | None = None


class Payload(msgspec.Struct):
    answerStatus: Id = None
    attemptStatus: Id = None
    gradingType: Id = None
    isStudent: bool | None = None
    questionType: Id = None


class Event(msgspec.Struct):
    """One log API 3.0 event. Unknown fields are ignored; absent objects mean empty."""

    eventId: Id = None
    eventName: Id = None
    session: Session | None = None
    startTime: int | None = None
    endTime: int | None = None
    user: User | None = None
    context: Context | None = None
    metrics: Metrics | None = None
    payLoadObject: Payload | None = None


_one = msgspec.json.Decoder(Event)
_many = msgspec.json.Decoder(list[msgspec.Raw])


def looks_like(obj: object) -> bool:
    first = obj[0] if isinstance(obj, list) and obj else obj
    return isinstance(first, dict) and first.get("eventName") in EVENT_NAMES


def parse(value: bytes | None, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    if not value:
        raise InvalidEvent("empty", "the event has no body")
    if value.lstrip()[:1] != b"[":
        return [to_canonical(decode(value), received_at)]
    try:
        raws = _many.decode(value)
    except msgspec.DecodeError as exc:
        raise InvalidEvent("bad_json", str(exc)) from None
    if not raws:
        raise InvalidEvent("empty", "the array holds no events")
    out: list[CanonicalEvent | Rejected] = []
    for i, raw in enumerate(raws):
        try:
            out.append(to_canonical(decode(raw, f"[{i}]."), received_at))
        except InvalidEvent as exc:
            out.append(Rejected(i, exc))
    if all(isinstance(o, Rejected) for o in out):
        raise next(o.error for o in out if isinstance(o, Rejected))
    return out


def decode(value: bytes | msgspec.Raw, prefix: str = "") -> Event:
    return r.decode(_one, bytes(value), prefix)


def _kind(e: Event, ctx: Context) -> tuple[str, str | None]:
    """The content's kind and the kind of the collection it was played in."""
    parent = r.COLLECTION_KINDS.get(ctx.collectionType or "")
    if e.eventName == "collection.play":
        return r.collection_kind(ctx.collectionType, "context.collectionType"), None
    if ctx.resourceType not in (None, "resource", "question"):
        raise InvalidEvent(
            "bad_value",
            f"context.resourceType={ctx.resourceType!r} is not resource or question",
            field="context.resourceType",
        )
    if e.eventName == "reaction.create" and ctx.resourceType is None and parent:
        return parent, None  # a reaction to the collection or assessment itself
    return ctx.resourceType or "resource", parent


def _reaction(raw: int | str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 5:
        raise InvalidEvent(
            "bad_value", f"context.reactionType={raw!r} is not 0..5", field="context.reactionType"
        )
    return value


def to_canonical(e: Event, received_at: datetime) -> CanonicalEvent:
    event_id = r.required_id(e.eventId, "eventId")
    if e.eventName not in EVENT_NAMES:
        raise InvalidEvent(
            "bad_value", f"eventName={e.eventName!r} is not a log API 3.0 event", field="eventName"
        )
    ctx, payload = e.context or Context(), e.payLoadObject or Payload()
    user_id = r.required_id((e.user or User()).gooruUId, "user.gooruUId")
    content_id = r.required_id(ctx.contentGooruId, "context.contentGooruId")
    started = r.checked_ms(e.startTime, "startTime")
    kind, parent_kind = _kind(e, ctx)
    action = "reaction" if e.eventName == "reaction.create" else ctx.type
    if action not in ("start", "stop", "reaction"):
        raise InvalidEvent(
            "bad_value", f"context.type={ctx.type!r} is not start or stop", field="context.type"
        )
    occurred, metrics = started, UsageMetrics(reaction=_reaction(ctx.reactionType))
    if action == "reaction" and metrics.reaction is None:
        raise InvalidEvent(
            "missing_field", "a reaction needs context.reactionType", field="context.reactionType"
        )
    if action == "stop":
        occurred = r.checked_ms(e.endTime, "endTime")
        spent, raw = r.clamp_time_spent(occurred - started)
        score = (
            r.question_score(payload.answerStatus)
            if kind == "question"
            else r.percent((e.metrics or Metrics()).score, "metrics.score")
        )
        metrics = UsageMetrics(
            time_spent_ms=spent,
            time_spent_raw_ms=raw,
            score=score,
            views=r.views_on_stop(kind),
            answer_status=payload.answerStatus,
        )
    elif action == "start":
        metrics = UsageMetrics(views=r.views_on_start(kind))
    usage = Usage(
        user_id=user_id,
        content_id=content_id,
        content_type=kind,
        action=action,
        collection_id=r.optional_id(ctx.parentGooruId, "context.parentGooruId"),
        collection_type=parent_kind,
        class_id=r.optional_id(ctx.classGooruId, "context.classGooruId"),
        course_id=r.optional_id(ctx.courseGooruId, "context.courseGooruId"),
        unit_id=r.optional_id(ctx.unitGooruId, "context.unitGooruId"),
        lesson_id=r.optional_id(ctx.lessonGooruId, "context.lessonGooruId"),
        session_id=r.optional_id((e.session or Session()).sessionId, "session.sessionId"),
        is_student=payload.isStudent is not False,
        metrics=metrics,
    )
    return CanonicalEvent(
        event_id=event_id,
        source=NAME,
        event_type=f"{e.eventName}.{action}",
        entity_type="usage",
        entity_id=user_id,  # the key: one learner's events stay in order
        occurred_at=from_ms(occurred),
        received_at=received_at,
        actor_id=user_id,
        usage=usage,
        impacts=_impacts(usage),
    )


def _impacts(usage: Usage) -> tuple[Impact, ...]:
    if usage.action == "start":
        return r.start_impacts(usage)
    if usage.action == "reaction":
        return (Impact(usage.content_type, "reaction"),) if usage.is_student else ()
    return r.stop_impacts(usage)
