"""GEP on the Gooru formats and the EdMobile partner: the platform's rules, the impacts each
event states, and a typed reason naming the field for each rejection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.codec import Codec
from common.deadletter import H_REASON, header
from common.errors import InvalidEvent
from common.events import CanonicalEvent
from common.topics import Topics
from gep.stage import INDEX_HEADER, Gep
from tests.fakes import FakeMessage

CODEC = Codec()
GEP = Gep(Topics(), CODEC)
T0 = 1_600_000_000_000
CTX = {
    "type": "stop",
    "contentGooruId": "q-100",
    "parentGooruId": "asmt-9",
    "classGooruId": "class-1",
    "collectionType": "assessment",
    "resourceType": "question",
}


def logapi(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": "not-a-uuid-1",
        "eventName": "collection.resource.play",
        "session": {"apiKey": "k", "sessionId": "s-42"},
        "startTime": T0,
        "endTime": T0 + 65_000,
        "user": {"gooruUId": "learner-7"},
        "context": dict(CTX),
        "version": {"logApi": "3.0"},
        "metrics": {},
        "payLoadObject": {"answerStatus": "correct", "isStudent": True},
    }
    for k, v in changes.items():
        if k == "context":
            event["context"] = {**CTX, **v}
        elif v is None:
            event.pop(k)
        else:
            event[k] = v
    return event


def run(body: object) -> list[CanonicalEvent]:
    out = GEP(FakeMessage(json.dumps(body).encode()))
    assert all(o.topic == "org.gooru.da.canonical" for o in out)
    return [CanonicalEvent.decode(CODEC, o.value) for o in out]


def impacts(e: CanonicalEvent) -> set[str]:
    return {f"{i.entity}.{i.metric}" for i in e.impacts}


def test_question_stop_in_an_assessment() -> None:
    [e] = run([logapi()])
    assert e.usage is not None and e.entity_id == "learner-7" and e.event_id == "not-a-uuid-1"
    u = e.usage
    assert (u.content_id, u.content_type, u.collection_id, u.collection_type) == (
        "q-100",
        "question",
        "asmt-9",
        "assessment",
    )
    assert (u.metrics.time_spent_ms, u.metrics.score, u.session_id) == (65_000, 100.0, "s-42")
    assert impacts(e) == {"question.timespent", "question.score"}
    assert e.occurred_at.timestamp() * 1000 == T0 + 65_000


@pytest.mark.parametrize(
    "status,score", [("correct", 100.0), ("incorrect", 0.0), ("attempted", 0.0), ("skipped", None)]
)
def test_question_score_from_answer_status(status: str, score: float | None) -> None:
    [e] = run(logapi(payLoadObject={"answerStatus": status}))
    assert e.usage is not None and e.usage.metrics.score == score


def test_time_spent_counts_on_stop_only_and_views_follow_the_collection_kind() -> None:
    start = logapi(eventName="collection.play", context={"type": "start", "contentGooruId": "c1"})
    start["context"]["collectionType"] = "collection"
    [s] = run(start)
    assert s.usage is not None and s.usage.metrics.time_spent_ms is None
    assert impacts(s) == {"collection.start", "collection.view"}  # a view on start
    asmt_start = logapi(eventName="collection.play", context={"type": "start"})
    assert impacts(run(asmt_start)[0]) == {"collection.start"}  # its view counts on stop
    stop = logapi(eventName="collection.play", metrics={"score": 80})
    [a] = run(stop)
    assert a.usage is not None and a.usage.content_type == "assessment"
    assert impacts(a) == {"assessment.timespent", "assessment.view", "assessment.score"}
    coll_stop = logapi(eventName="collection.play", context={"collectionType": "collection"})
    assert impacts(run(coll_stop)[0]) == set()  # rolled up from its resources instead


def test_missing_objects_mean_empty_and_missing_is_student_means_true() -> None:
    [e] = run(logapi(payLoadObject=None, metrics=None, session=None))
    assert e.usage is not None and e.usage.is_student and e.usage.session_id is None
    assert impacts(e) == {"question.timespent"}  # no answer status: unscored


def test_a_teachers_preview_changes_no_metric() -> None:
    [e] = run(logapi(payLoadObject={"isStudent": False, "answerStatus": "correct"}))
    assert e.usage is not None and not e.usage.is_student and e.impacts == ()


@pytest.mark.parametrize("spent,kept,raw", [(9_000_000, 7_200_000, 9_000_000), (-5, 0, -5)])
def test_time_spent_is_clamped_and_the_clamp_recorded(spent: int, kept: int, raw: int) -> None:
    [e] = run(logapi(endTime=T0 + spent))
    assert e.usage is not None
    assert (e.usage.metrics.time_spent_ms, e.usage.metrics.time_spent_raw_ms) == (kept, raw)


def test_reaction_on_a_resource() -> None:
    body = logapi(eventName="reaction.create", context={"type": None, "reactionType": 4})
    body["context"]["resourceType"] = "resource"
    [e] = run(body)
    assert e.usage is not None and e.usage.metrics.reaction == 4
    assert impacts(e) == {"resource.reaction"}


def test_one_invalid_element_is_dead_lettered_with_its_index_the_rest_go_on() -> None:
    body = [logapi(), logapi(eventId="x2", user={"gooruUId": ""}), logapi(eventId="x3")]
    value = json.dumps(body).encode()
    out = GEP(FakeMessage(value))
    assert [o.topic for o in out] == [
        "org.gooru.da.canonical",
        "org.gooru.da.dlq.gep",
        "org.gooru.da.canonical",
    ]
    dead = out[1]
    assert dead.value == value  # the original message
    assert header(dead.headers, INDEX_HEADER) == "1"
    assert header(dead.headers, H_REASON) == "missing_field"
    assert header(dead.headers, "da-field") == "user.gooruUId"


@pytest.mark.parametrize(
    "body,reason,field",
    [
        ([logapi(user={"gooruUId": 7})], "bad_type", "[0].user.gooruUId"),
        (logapi(context={"contentGooruId": None}), "missing_field", "context.contentGooruId"),
        (logapi(context={"type": "pause"}), "bad_value", "context.type"),
        (logapi(context={"resourceType": "video"}), "bad_value", "context.resourceType"),
        (logapi(endTime=None), "missing_field", "endTime"),
        (logapi(startTime=1_600_000_000), "bad_timestamp", "startTime"),
        (logapi(eventId=""), "missing_field", "eventId"),
        ([], "empty", None),
        (
            logapi(eventName="reaction.create", context={"type": None}),
            "missing_field",
            "context.reactionType",
        ),
    ],
)
def test_invalid_log_api_events(body: object, reason: str, field: str | None) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(json.dumps(body).encode(), _headers=[("da-format", b"gooru.logapi")]))
    assert (info.value.reason, info.value.field) == (reason, field)


def logwriter(**changes: Any) -> dict[str, Any]:
    return {
        "eventId": "lw-1",
        "eventName": "resource.performance",
        "userId": "learner-8",
        "activityTime": T0,
        "collectionId": "coll-2",
        "collectionType": "collection",
        "resourceId": "q-7",
        "resourceType": "question",
        "context": {"classId": "class-1", "sessionId": "s-9"},
        "result": {"timeSpent": 30_000, "answerStatus": "incorrect"},
        **changes,
    }


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({}, {"question.timespent", "question.score"}),
        ({"resourceType": "resource", "result": {"timeSpent": 5}}, {"resource.timespent"}),
        ({"result": {"timeSpent": 5, "reaction": 3}}, {"question.timespent", "question.reaction"}),
        ({"eventName": "collection.start"}, {"collection.start", "collection.view"}),
        (
            {"eventName": "collection.start", "collectionType": "offline-activity"},
            {"collection.start"},
        ),
        (
            {
                "eventName": "collection.performance",
                "collectionType": "offline-activity",
                "result": {"timeSpent": 9, "score": 75},
            },
            {"assessment.timespent", "assessment.score", "assessment.view"},
        ),
        ({"eventName": "collection.performance", "result": {"timeSpent": 9, "score": 75}}, set()),
        (
            {
                "eventName": "collection.score.update",
                "collectionType": "assessment-external",
                "result": {"score": 60},
            },
            {"assessment.score"},
        ),
        ({"eventName": "resource.score.update", "result": {"score": 50}}, {"question.score"}),
    ],
)
def test_log_writer_routing(changes: dict[str, Any], expected: set[str]) -> None:
    [e] = run(logwriter(**changes))
    assert impacts(e) == expected


def test_log_writer_question_scored_from_answer_status_in_its_class_context() -> None:
    [e] = run(logwriter())
    assert e.usage is not None
    assert (e.usage.metrics.score, e.usage.class_id, e.usage.collection_id) == (
        0.0,
        "class-1",
        "coll-2",
    )


@pytest.mark.parametrize(
    "changes,reason,field",
    [
        ({"userId": None}, "missing_field", "userId"),
        ({"collectionType": "playlist"}, "bad_value", "collectionType"),
        ({"result": {"score": 120, "timeSpent": 1}}, "bad_value", "result.score"),
        ({"result": {}}, "missing_field", "result.timeSpent"),
        ({"result": {"timeSpent": "long"}}, "bad_type", "result.timeSpent"),
    ],
)
def test_invalid_log_writer_events(changes: dict[str, Any], reason: str, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(json.dumps(logwriter(**changes)).encode()))
    assert (info.value.reason, info.value.field) == (reason, field)


def system(**changes: Any) -> dict[str, Any]:
    data = {"id": "asmt-9", "contentType": "assessment-external", "competencies": ["K1", "K2"]}
    return {
        "eventId": "sys-1",
        "eventName": "content.created",
        "timestamp": T0,
        "data": data,
        **changes,
    }


def test_content_created_carries_its_metadata() -> None:
    [e] = run(system())
    assert (e.entity_type, e.entity_id, e.event_type) == ("content", "asmt-9", "content.created")
    assert e.system is not None
    # the kind as sent: an external assessment is not folded into "assessment"
    assert (e.system.content_type, e.system.competencies) == ("assessment-external", ("K1", "K2"))
    assert impacts(e) == {"content.created"}


def test_a_deleted_class_needs_no_content_type() -> None:
    [e] = run(system(eventName="class.deleted", data={"id": "class-1"}))
    assert (e.entity_type, e.entity_id, e.system and e.system.action) == (
        "class",
        "class-1",
        "deleted",
    )


@pytest.mark.parametrize(
    "changes,reason,field",
    [
        ({"data": {"id": "c", "contentType": "movie"}}, "bad_value", "data.contentType"),
        ({"data": {"contentType": "question"}}, "missing_field", "data.id"),
        ({"timestamp": None}, "missing_field", "timestamp"),
    ],
)
def test_invalid_system_events(changes: dict[str, Any], reason: str, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(json.dumps(system(**changes)).encode()))
    assert (info.value.reason, info.value.field) == (reason, field)


def edmobile(**changes: Any) -> dict[str, Any]:
    return {
        "partner": "edmobile",
        "activityId": "em-1",
        "learnerRef": "learner-9",
        "kind": "quiz-item",
        "itemRef": "q-5",
        "quizRef": "asmt-9",
        "startedAt": "2020-09-13T12:00:00+02:00",
        "finishedAt": "2020-09-13T12:01:30+02:00",
        "outcome": "right",
        **changes,
    }


def test_partner_activity_becomes_global_usage() -> None:
    [e] = run(edmobile())
    assert e.source == "gooru.logapi" and e.usage is not None
    assert (e.usage.content_id, e.usage.collection_id, e.usage.metrics.time_spent_ms) == (
        "q-5",
        "asmt-9",
        90_000,
    )
    assert e.usage.metrics.score == 100.0 and impacts(e) == {"question.timespent", "question.score"}


def test_a_partner_rating_becomes_a_reaction() -> None:
    start, play, rating = run(
        edmobile(kind="quiz", itemRef="asmt-9", quizRef=None, percent=70, rating=5)
    )
    assert start.event_id == "em-1:start" and impacts(start) == {"collection.start"}
    assert impacts(play) == {"assessment.timespent", "assessment.score", "assessment.view"}
    assert rating.event_id == "em-1:rating" and impacts(rating) == {"assessment.reaction"}


@pytest.mark.parametrize(
    "changes,reason,field",
    [
        ({"kind": "podcast"}, "bad_value", "kind"),
        ({"startedAt": "2020-09-13T12:00:00"}, "bad_timestamp", "startedAt"),
        ({"learnerRef": None}, "missing_field", "learnerRef"),
    ],
)
def test_invalid_partner_activities(changes: dict[str, Any], reason: str, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(json.dumps(edmobile(**changes)).encode()))
    assert (info.value.reason, info.value.field) == (reason, field)
