"""Gooru log-writer events (docs/formats.md): one JSON object per event,
with the play's outcome in ``result``.

Routing, as the platform's event processor did it, emitting the lowest dimension only, and the one
rule per metric of ``gooru_rules`` (the same learner action counts the same in every format):
``collection.start`` -> a start, and a collection's view; an assessment's (also external, offline
activity) ``collection.performance`` -> its time spent, score and view, and
``collection.score.update`` -> its score; ``resource.performance`` -> the resource's or question's
time spent (a question's score too, a reaction when one is given); ``resource.score.update`` -> a
question's score. A collection's own time and score come from the collection-rollup DEP instead (see
``gooru_rules.stop_impacts``). ``result.score`` is a percentage; a question without one is scored
from ``answerStatus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from common.errors import InvalidEvent
from common.events import CanonicalEvent, Impact, Usage, UsageMetrics
from gep.formats import gooru_rules as r
from gep.formats.rejected import Rejected

NAME = "gooru.logwriter"
EVENT_NAMES = (
    "collection.start",
    "collection.performance",
    "resource.performance",
    "collection.score.update",
    "resource.score.update",
)
Id = str | None


class Context(msgspec.Struct):
    classId: Id = None
    courseId: Id = None
    unitId: Id = None
    lessonId: Id = None
    collectionId: Id = None
    collectionType: Id = None
    sessionId: Id = None
    pathId: int | str | None = None
    partnerId: Id = None
    tenantId: Id = None


class Result(msgspec.Struct):
    score: float | None = None
    maxScore: float | None = None
    timeSpent: r.Long | None = None
    reaction: int | None = None
    answerStatus: Id = None


class Event(msgspec.Struct):
    eventId: Id = None
    eventName: Id = None
    userId: Id = None
    activityTime: int | None = None
    collectionId: Id = None
    collectionType: Id = None
    resourceId: Id = None
    resourceType: Id = None
    isStudent: bool | None = None
    context: Context | None = None
    result: Result | None = None


_decoder = msgspec.json.Decoder(Event)


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("eventName") in EVENT_NAMES


def parse(value: bytes | None, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    event = r.decode(_decoder, value)
    return [to_canonical(event, received_at)]


def to_canonical(e: Event, received_at: datetime) -> CanonicalEvent:
    event_id = r.required_id(e.eventId, "eventId")
    name = e.eventName
    if name not in EVENT_NAMES:
        raise InvalidEvent(
            "bad_value", f"eventName={name!r} is not a log-writer event", field="eventName"
        )
    user_id = r.required_id(e.userId, "userId")
    occurred = r.epoch_ms(e.activityTime, "activityTime")
    ctx, res = e.context or Context(), e.result or Result()
    collection_id = r.required_id(e.collectionId or ctx.collectionId, "collectionId")
    collection_kind = r.collection_kind(e.collectionType or ctx.collectionType, "collectionType")
    on_resource = name.startswith("resource.")
    if on_resource:
        content_id = r.required_id(e.resourceId, "resourceId")
        if e.resourceType not in ("resource", "question"):
            raise InvalidEvent(
                "bad_value",
                f"resourceType={e.resourceType!r} is not resource or question",
                field="resourceType",
            )
        kind: str = e.resourceType
    else:
        content_id, kind = collection_id, collection_kind
    spent, raw = (None, None)
    if name.endswith(".performance"):
        if res.timeSpent is None:
            raise InvalidEvent(
                "missing_field", "a performance needs result.timeSpent", field="result.timeSpent"
            )
        spent, raw = r.clamp_time_spent(res.timeSpent)
    score = r.percent(res.score, "result.score")
    if score is None and kind == "question":
        score = r.question_score(res.answerStatus)
    if res.reaction is not None and not 0 <= res.reaction <= 5:
        raise InvalidEvent("bad_value", "result.reaction is not 0..5", field="result.reaction")
    action = "start" if name == "collection.start" else "score" if "score" in name else "stop"
    views = r.views_on_start(kind) if action == "start" else 0
    views = r.views_on_stop(kind) if action == "stop" else views
    usage = Usage(
        user_id=user_id,
        content_id=content_id,
        content_type=kind,
        action=action,
        collection_id=collection_id if on_resource else None,
        collection_type=collection_kind if on_resource else None,
        class_id=r.optional_id(ctx.classId, "context.classId"),
        course_id=r.optional_id(ctx.courseId, "context.courseId"),
        unit_id=r.optional_id(ctx.unitId, "context.unitId"),
        lesson_id=r.optional_id(ctx.lessonId, "context.lessonId"),
        session_id=r.optional_id(ctx.sessionId, "context.sessionId"),
        is_student=e.isStudent is not False,
        metrics=UsageMetrics(
            time_spent_ms=spent,
            time_spent_raw_ms=raw,
            score=score,
            max_score=res.maxScore,
            reaction=res.reaction if res.reaction else None,
            views=views,
            answer_status=res.answerStatus,
        ),
    )
    return CanonicalEvent(
        event_id=event_id,
        source=NAME,
        event_type=name,
        entity_type="usage",
        entity_id=user_id,
        occurred_at=occurred,
        received_at=received_at,
        actor_id=user_id,
        usage=usage,
        impacts=_impacts(usage),
    )


def _impacts(usage: Usage) -> tuple[Impact, ...]:
    if not usage.is_student:
        return ()
    if usage.action == "start":
        return r.start_impacts(usage)
    if usage.action == "score":
        kind = usage.content_type
        has = kind in ("question", "assessment") and usage.metrics.score is not None
        return (Impact(kind, "score"),) if has else ()
    return r.stop_impacts(usage)
