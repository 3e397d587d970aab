"""Every GEP format, fuzzed: on arbitrary bytes and on arbitrary JSON shaped like the format, a
parse returns canonical records that encode (or ``Rejected`` elements), or raises
``InvalidEvent`` with a reason; never another exception. Fixed seed, bounded examples."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from common import web_post
from common.codec import Codec
from common.errors import InvalidEvent
from common.names import FORMAT_HEADER
from common.topics import Topics
from gep.formats import FORMATS, Format, web
from gep.formats.rejected import Rejected
from gep.stage import Gep
from tests.fakes import FakeMessage
from tests.nasty import NASTY_CONTAINERS, deep, nasty_json, nasty_scalars

CODEC = Codec()
NOW = datetime(2024, 5, 1, tzinfo=UTC)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(fmt: Format, value: bytes) -> str:
    """What a parse made of ``value``: the rejection reason, or 'ok'. Anything else raises."""
    try:
        out = fmt.parse(value, NOW)
    except InvalidEvent as exc:
        assert exc.reason and exc.detail
        return exc.reason
    for e in out:
        if isinstance(e, Rejected):
            assert e.error.reason
        else:
            e.encode(CODEC)  # a record GEP could not encode would stop GEP
    return "ok"


def field(*plausible: Any) -> st.SearchStrategy[Any]:
    """A value the format expects (so the parse goes deep), or anything nasty."""
    return st.one_of(st.sampled_from(plausible), nasty_scalars, st.sampled_from(NASTY_CONTAINERS))


MS = (1_600_000_000_000, 1_600_000_060_000, 946_684_800_000, 4_102_444_799_999)
ID = ("u-1", "c-1", " x ", "1" * 200)
TS = ("2021-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00")
_shapes: dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]] = {}


def shape(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        _shapes[name] = fn
        return fn

    return register


@shape("proctoring.csv")
def _proctoring() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "id": field("1", 2),
            "type": field("Event::Welcome", "Event::X1"),
            "fulfillment_id": field("f-1", 7),
            "created_at": field("2020-01-18 08:10:33", *TS),
        },
        optional={"created_by_id": field("u"), "ip": field("1.2.3.4"), "\x00": field("x")},
    )


def _logapi_event() -> st.SearchStrategy[dict[str, Any]]:
    ctx = st.fixed_dictionaries(
        {},
        optional={
            "type": field("start", "stop"),
            "contentGooruId": field(*ID),
            "parentGooruId": field(*ID),
            "collectionType": field("collection", "assessment"),
            "resourceType": field("resource", "question"),
            "reactionType": field(0, 3, "4", 99),
            "classGooruId": field(*ID),
        },
    )
    return st.fixed_dictionaries(
        {
            "eventId": field(*ID),
            "eventName": field("collection.play", "collection.resource.play", "reaction.create"),
            "startTime": field(*MS),
            "endTime": field(*MS, 2**64 - 1),
            "user": st.fixed_dictionaries({"gooruUId": field(*ID)}),
            "context": ctx,
        },
        optional={
            "metrics": st.fixed_dictionaries({"score": field(50.0, 100, 1e308)}),
            "payLoadObject": st.fixed_dictionaries(
                {"answerStatus": field("correct"), "isStudent": field(True, False)}
            ),
            "session": st.fixed_dictionaries({"sessionId": field(*ID)}),
        },
    )


@shape("gooru.logapi")
def _logapi() -> st.SearchStrategy[Any]:
    return st.one_of(_logapi_event(), st.lists(_logapi_event(), min_size=1, max_size=3))


@shape("gooru.logwriter")
def _logwriter() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "eventId": field(*ID),
            "eventName": field(
                "collection.start", "resource.performance", "collection.score.update"
            ),
            "userId": field(*ID),
            "activityTime": field(*MS),
            "collectionId": field(*ID),
            "collectionType": field("collection", "assessment"),
            "resourceId": field(*ID),
            "resourceType": field("resource", "question"),
        },
        optional={
            "result": st.fixed_dictionaries(
                {
                    "timeSpent": field(1000, -5, 2**63 - 1, 2**64 - 1),
                    "score": field(50.0, -1.0),
                    "maxScore": field(1e308, 10),
                    "reaction": field(2, 9),
                }
            )
        },
    )


@shape("gooru.system")
def _system() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "eventId": field(*ID),
            "eventName": field("content.created", "class.deleted"),
            "timestamp": field(*MS),
            "data": st.fixed_dictionaries(
                {"id": field(*ID), "contentType": field("question", "assessment")},
                optional={
                    "competencies": st.lists(field("MA.1"), max_size=3),
                    "title": field("T"),
                    "parentId": field(*ID),
                },
            ),
        },
        optional={"actorId": field(*ID)},
    )


@shape("partner.edmobile")
def _edmobile() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "partner": st.just("edmobile"),
            "activityId": field(*ID),
            "learnerRef": field(*ID),
            "kind": field("quiz", "quiz-item", "video"),
            "itemRef": field(*ID),
            "startedAt": field(*TS),
            "finishedAt": field(*TS),
        },
        optional={"rating": field(3, 9), "percent": field(50.0), "outcome": field("right")},
    )


@shape("web")
def _web() -> st.SearchStrategy[dict[str, Any]]:
    event = st.fixed_dictionaries(
        {
            "session_id": field("s-1"),
            "category": field("page interaction"),
            "name": field("pageview"),
            "data": st.one_of(
                st.dictionaries(st.text(max_size=5), nasty_json(3), min_size=1, max_size=4),
                field({"host": "h"}),
            ),
            "timestamp": field(*TS),
        }
    )
    return st.fixed_dictionaries({"app": field("shop"), "received_at": field(*TS), "event": event})


@shape("xtss")
def _xtss() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "operation": field("set-state", "set-flag", "clear-exec"),
            "ousUID": field("uid://a/b/c"),
            "value": field("READY", "k=v", "k=\x00"),
        },
        optional={
            "id": field("c-1", 7),
            "timestamp": field(*MS, *TS),
            "reply_to": field("reply.cli"),
            "hops": field(0, -1, 2**64 - 1),
        },
    )


@FUZZ
@seed(9)
@given(
    value=st.one_of(
        st.binary(max_size=300),
        deep(),
        st.builds(
            lambda op, uid, v: f"{op} {uid} {v}".encode(errors="surrogatepass"),
            st.sampled_from(["set-state", "set-flag", "x"]),
            st.sampled_from(["uid://a/b/c", "\x00"]),
            st.text(max_size=20),
        ),
    ),
    stamp=st.sampled_from([0, -1, 1_600_000_000_000, 2**62, 2**63 - 1]),
)
def test_a_message_parse_on_arbitrary_bytes_and_broker_times(value: bytes, stamp: int) -> None:
    """Formats that read the message itself (its place, the broker's time) too."""
    for fmt in FORMATS:
        if fmt.parse_message is not None:
            try:
                fmt.parse_message(StampedMessage(value, _offset=3, stamp=stamp), NOW)
            except InvalidEvent as exc:
                assert exc.reason


@dataclass
class StampedMessage(FakeMessage):
    stamp: int = 0

    def timestamp(self) -> tuple[int, int]:
        return (1, self.stamp)  # a producer's CreateTime: any 64-bit value


def test_every_format_has_a_shape() -> None:
    assert {f.name for f in FORMATS} == set(_shapes)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@FUZZ
@seed(9)
@given(value=st.one_of(st.binary(max_size=300), deep()))
def test_arbitrary_bytes_parse_or_are_rejected(fmt: Format, value: bytes) -> None:
    outcome(fmt, value)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@FUZZ
@seed(9)
@given(data=st.data())
def test_json_shaped_like_the_format_parses_or_is_rejected(
    fmt: Format, data: st.DataObject
) -> None:
    doc = data.draw(_shapes[fmt.name]())
    ascii_only = data.draw(st.booleans())
    outcome(fmt, json.dumps(doc, ensure_ascii=ascii_only).encode(errors="surrogatepass"))


@FUZZ
@seed(9)
@given(
    value=st.one_of(st.binary(max_size=300), deep(), nasty_json(3).map(json.dumps).map(str.encode))
)
def test_gep_without_a_format_header_never_raises_anything_but_invalid_event(value: bytes) -> None:
    gep = Gep(Topics("ns"), CODEC)
    try:
        gep(FakeMessage(value))
    except InvalidEvent as exc:
        assert exc.reason


def web_event(data: str) -> str:
    """A posted web event around the payload ``data`` (JSON text)."""
    head = '{"session_id":"s","category":"c","name":"n","timestamp":"2021-01-01T00:00:00"'
    return f'{head},"data":{data}}}'


@pytest.mark.parametrize("depth", [100, 955, 1_000, 10_000])
def test_deep_nesting_is_a_reason_not_a_crash(depth: int) -> None:
    data = "[" * depth + "1" + "]" * depth
    event = web_event(f'{{"x":{data}}}')
    record = web_post.envelope("shop", NOW, event.encode())
    for fmt in FORMATS:
        body = record if fmt.name == "web" else data.encode()
        with pytest.raises(InvalidEvent) as info:
            fmt.parse(body, NOW)
        assert info.value.reason in ("too_deep", "bad_type", "not_flat_object", "bad_json")
    with pytest.raises(InvalidEvent, match="too_deep"):
        web.parse(record, NOW)
    with pytest.raises(InvalidEvent) as info:
        Gep(Topics("ns"), CODEC)(FakeMessage(data.encode()))
    assert info.value.reason == ("too_deep" if depth >= 1_000 else "unknown_format")


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"], ids=["min", "max"]
)
def test_a_timestamp_whose_utc_overflows_is_bad_timestamp(stamp: str) -> None:
    command = {"id": "c", "operation": "clear-exec", "ousUID": "uid://a/b/c", "timestamp": stamp}
    xtss = FakeMessage(json.dumps(command).encode(), _headers=[(FORMAT_HEADER, b"xtss")])
    with pytest.raises(InvalidEvent) as info:
        Gep(Topics("ns"), CODEC)(xtss)
    assert (info.value.reason, info.value.field) == ("bad_timestamp", "timestamp")
    row = {"id": "1", "type": "Event::Welcome", "fulfillment_id": "f", "created_at": stamp}
    msg = FakeMessage(json.dumps(row).encode(), _headers=[(FORMAT_HEADER, b"proctoring.csv")])
    with pytest.raises(InvalidEvent) as info:
        Gep(Topics("ns"), CODEC)(msg)
    assert (info.value.reason, info.value.field) == ("bad_timestamp", "created_at")
    event = {"session_id": "s", "category": "c", "name": "n", "data": {"a": 1}, "timestamp": stamp}
    with pytest.raises(InvalidEvent) as info:
        web.parse(web_post.envelope("shop", NOW, json.dumps(event).encode()), NOW)
    assert (info.value.reason, info.value.field) == ("bad_timestamp", "timestamp")


@pytest.mark.parametrize(
    "data,field",
    [
        ('{"a": "x\\u0000y"}', "data.a"),
        ('{"a": {"k\\u0000": 1}}', "data.a"),
        ('{"a": ["ok", "\\ud800"]}', "data.a[1]"),
        ('{"\\udfff": 1}', "data"),
    ],
)
def test_text_postgresql_cannot_store_is_refused_naming_the_field(data: str, field: str) -> None:
    event = web_event(data)
    with pytest.raises(InvalidEvent) as info:
        web_post.decode_event(event.encode())  # as the collector sees it
    assert (info.value.reason, info.value.field) == ("unstorable_text", field)
    with pytest.raises(InvalidEvent) as info:  # as GEP sees it, inside the collector's record
        web.parse(web_post.envelope("shop", NOW, event.encode()), NOW)
    assert info.value.reason == "unstorable_text"
    assert info.value.field in (field, f"event.{field}")


def test_an_integer_past_avro_long_is_a_reason() -> None:
    event = {
        "eventId": "e",
        "eventName": "resource.performance",
        "userId": "u",
        "activityTime": MS[0],
        "collectionId": "c",
        "collectionType": "collection",
        "resourceId": "r",
        "resourceType": "resource",
        "result": {"timeSpent": 2**64 - 1},
    }
    fmt = next(f for f in FORMATS if f.name == "gooru.logwriter")
    assert outcome(fmt, json.dumps(event).encode()) == "bad_type"
