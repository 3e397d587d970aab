"""One rule per usage metric, whatever client reported the play: the same learner action sent
through every format that can carry it (log API 3.0, log writer, EdMobile) gives the same
``usage_metrics`` rows, on a real PostgreSQL. Each message goes through GEP and the demux as
their handlers, then through every learning DEP that consumes the DE's topic (the roll-up's
outbox DEs too), as the running pipeline would route them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from common import db
from common.codec import Codec
from common.epoch import from_ms
from common.events import UsageEvent
from common.settings import Settings
from common.topics import Topics
from demux.stage import Demux
from dep import registry
from gep.stage import Gep
from tests.fakes import FakeMessage

CODEC = Codec()
DEPS = ("usage-metrics", "collection-rollup")
T0 = 1_600_000_000_000
S, E = T0, T0 + 600_000  # the play of the collection or assessment: start, end
Raw = tuple[str, Any]  # (da-format, JSON value)


def pipeline(settings: Settings, messages: list[Raw]) -> list[tuple[Any, ...]]:
    """The ``usage_metrics`` rows these raw messages make, from empty tables."""
    topics = Topics(settings.namespace)
    gep, demux = Gep(topics, CODEC), Demux(topics, CODEC)
    handlers = {name: registry.get(name).build(settings, CODEC) for name in DEPS}
    inputs = {name: set(registry.get(name).topics(topics)) for name in DEPS}
    des: list[tuple[str, bytes]] = []
    for fmt, value in messages:
        raw = FakeMessage(json.dumps(value).encode(), _headers=[("da-format", fmt.encode())])
        for canonical in gep(raw):
            des += [(d.topic, d.value) for d in demux(FakeMessage(canonical.value))]
    with db.connect(settings) as conn:
        for table in ("usage_metrics", "usage_seen", "usage_scores", "rollup_seen"):
            conn.execute(f"TRUNCATE {table}")
        conn.execute("TRUNCATE rollup_scores, da_outbox")
        while des:
            with conn.transaction():
                cur = conn.cursor()
                for name in DEPS:
                    mine = [UsageEvent.decode(CODEC, v) for t, v in des if t in inputs[name]]
                    handlers[name].handle(mine, cur)
                des = [
                    (str(t), bytes(v))  # type: ignore[call-overload]
                    for t, v in cur.execute("DELETE FROM da_outbox RETURNING topic, value")
                ]
        return conn.execute(
            "SELECT user_id, content_id, class_id, course_id, unit_id, lesson_id, time_spent_ms, "
            "views, starts, latest_score, best_score, latest_reaction, reaction_at "
            "FROM usage_metrics ORDER BY content_id"
        ).fetchall()


def logapi(name: str, typ: str | None, content: str, start: int, end: int, **ctx: Any) -> Raw:
    metrics = {"score": ctx.pop("score")} if "score" in ctx else {}
    payload = {"answerStatus": ctx.pop("answerStatus", None)}
    event = {
        "eventId": f"api-{content}-{typ}",
        "eventName": name,
        "session": {"sessionId": "s1"},
        "startTime": start,
        "endTime": end,
        "user": {"gooruUId": "u1"},
        "context": {"type": typ, "contentGooruId": content, "classGooruId": "k1", **ctx},
        "metrics": metrics,
        "payLoadObject": payload,
    }
    return "gooru.logapi", [event]


def logwriter(name: str, collection: str, kind: str, at: int, **fields: Any) -> Raw:
    return "gooru.logwriter", {
        "eventId": f"lw-{name}-{fields.get('resourceId', collection)}",
        "eventName": name,
        "userId": "u1",
        "activityTime": at,
        "collectionId": collection,
        "collectionType": kind,
        "context": {"classId": "k1", "sessionId": "s1"},
        **fields,
    }


def edmobile(activity: str, kind: str, item: str, start: int, end: int, **fields: Any) -> Raw:
    def iso(ms: int) -> str:
        return from_ms(ms).isoformat()

    return "partner.edmobile", {
        "partner": "edmobile",
        "activityId": activity,
        "learnerRef": "u1",
        "kind": kind,
        "itemRef": item,
        "classRef": "k1",
        "startedAt": iso(start),
        "finishedAt": iso(end),
        **fields,
    }


# -- the learner takes assessment a1: answers q1 right and q2 wrong, submits with 50 % --------
Q1, Q2 = (S + 1_000, S + 61_001), (S + 61_001, S + 200_123)


def assessment_logapi() -> list[Raw]:
    item: dict[str, Any] = {
        "parentGooruId": "a1",
        "collectionType": "assessment",
        "resourceType": "question",
    }
    return [
        logapi("collection.play", "start", "a1", S, S, collectionType="assessment"),
        logapi("collection.resource.play", "stop", "q1", *Q1, **item, answerStatus="correct"),
        logapi("collection.resource.play", "stop", "q2", *Q2, **item, answerStatus="incorrect"),
        logapi("collection.play", "stop", "a1", S, E, collectionType="assessment", score=50),
    ]


def assessment_logwriter() -> list[Raw]:
    def answer(q: str, span: tuple[int, int], status: str) -> Raw:
        result = {"timeSpent": span[1] - span[0], "answerStatus": status}
        return logwriter(
            "resource.performance", "a1", "assessment", span[1], resourceId=q,
            resourceType="question", result=result,
        )  # fmt: skip

    return [
        logwriter("collection.start", "a1", "assessment", S),
        answer("q1", Q1, "correct"),
        answer("q2", Q2, "incorrect"),
        logwriter(
            "collection.performance", "a1", "assessment", E,
            result={"timeSpent": E - S, "score": 50},
        ),
    ]  # fmt: skip


def assessment_edmobile() -> list[Raw]:
    return [
        edmobile("em-q1", "quiz-item", "q1", *Q1, quizRef="a1", outcome="right"),
        edmobile("em-q2", "quiz-item", "q2", *Q2, quizRef="a1", outcome="wrong"),
        edmobile("em-a1", "quiz", "a1", S, E, percent=50),
    ]


def row(content: str, spent: int, views: int, starts: int, score: float | None) -> tuple[Any, ...]:
    best = score
    return ("u1", content, "k1", "", "", "", spent, views, starts, score, best, None, None)


ASSESSMENT = [  # from the rules: a view on the end of the attempt, a start on its start
    row("a1", E - S, 1, 1, 50.0),
    row("q1", 60_001, 0, 0, 100.0),
    row("q2", 139_122, 0, 0, 0.0),
]


# -- the learner opens collection c1, reads r1, rates the collection 4 ------------------------
def collection_logapi() -> list[Raw]:
    item: dict[str, Any] = {
        "parentGooruId": "c1",
        "collectionType": "collection",
        "resourceType": "resource",
    }
    return [
        logapi("collection.play", "start", "c1", S, S, collectionType="collection"),
        logapi("collection.resource.play", "stop", "r1", S, S + 42_001, **item),
        logapi("collection.play", "stop", "c1", S, E, collectionType="collection"),
        logapi("reaction.create", None, "c1", E, E, collectionType="collection", reactionType=4),
    ]


def collection_logwriter() -> list[Raw]:
    return [
        logwriter("collection.start", "c1", "collection", S),
        logwriter(
            "resource.performance", "c1", "collection", S + 42_001, resourceId="r1",
            resourceType="resource", result={"timeSpent": 42_001},
        ),
        logwriter(
            "collection.performance", "c1", "collection", E,
            result={"timeSpent": E - S, "reaction": 4},
        ),
    ]  # fmt: skip


def collection_rows(reaction_at: Any) -> list[tuple[Any, ...]]:
    # a collection's own time comes from its items (rolled up); a view and a start on its start
    c1 = (*row("c1", 42_001, 1, 1, None)[:11], 4, reaction_at)
    return [c1, row("r1", 42_001, 0, 0, None)]


def lesson_logapi() -> list[Raw]:
    return [
        logapi("collection.play", "start", "c1", S, S, collectionType="collection"),
        logapi("collection.play", "stop", "c1", S, E, collectionType="collection"),
        logapi("reaction.create", None, "c1", E, E, collectionType="collection", reactionType=4),
    ]


def lesson_logwriter() -> list[Raw]:
    return [
        logwriter("collection.start", "c1", "collection", S),
        logwriter(
            "collection.performance", "c1", "collection", E,
            result={"timeSpent": E - S, "reaction": 4},
        ),
    ]  # fmt: skip


def lesson_edmobile() -> list[Raw]:
    return [edmobile("em-c1", "lesson", "c1", S, E, rating=4)]


ACTIONS: dict[str, tuple[list[Callable[[], list[Raw]]], Callable[[Any], list[Any]]]] = {
    "takes an assessment": (
        [assessment_logapi, assessment_logwriter, assessment_edmobile],
        lambda _: ASSESSMENT,
    ),
    "plays a collection's resource and rates it": (
        [collection_logapi, collection_logwriter],  # EdMobile has no resource in a lesson
        collection_rows,
    ),
    "opens a lesson and rates it": (
        [lesson_logapi, lesson_logwriter, lesson_edmobile],
        lambda at: [(*row("c1", 0, 1, 1, None)[:11], 4, at)],
    ),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_same_learner_action_counts_the_same_in_every_format(
    settings: Settings, action: str
) -> None:
    db.migrate(settings, registry.all_migrations())
    formats, rows = ACTIONS[action]
    got = {f.__name__: pipeline(settings, f()) for f in formats}
    want = rows(from_ms(E))
    assert got == {f.__name__: want for f in formats}
