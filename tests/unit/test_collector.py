"""The collector's checks, without a server: what is accepted, what is refused and why."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from collector.eventtypes import DEFAULT_DIR, EventTypes
from collector.ingest import Ingest, Rejected, Rejection
from collector.produce import AsyncProducer, NotAcknowledged, Record
from collector.ratelimit import RateLimits, TokenBucket
from common import web_post
from common.names import FORMAT_HEADER
from common.topics import Topics
from dep.collector_errors import to_record
from gep.formats import web
from tests.fakes import FakeMessage

# The three documented sample events of the collector (their trailing commas removed).
SEED: list[dict[str, Any]] = [
    {
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "page interaction",
        "name": "pageview",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": "2021-01-01 09:15:27.243860",
    },
    {
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "page interaction",
        "name": "cta click",
        "data": {"host": "www.consumeraffairs.com", "path": "/", "element": "chat bubble"},
        "timestamp": "2021-01-01 09:15:27.243860",
    },
    {
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "form interaction",
        "name": "submit",
        "data": {
            "host": "www.consumeraffairs.com",
            "path": "/",
            "form": {"first_name": "John", "last_name": "Doe"},
        },
        "timestamp": "2021-01-01 09:15:27.243860",
    },
]
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TYPES = EventTypes.load(DEFAULT_DIR, accept_unknown=False)


def ingest(types: EventTypes = TYPES) -> Ingest:
    return Ingest(Topics("t"), types, max_skew_s=60, max_batch=10, max_message_bytes=100_000)


def prepare(body: bytes, i: Ingest | None = None) -> list[Record]:
    i = i or ingest()
    raws, single = i.split(body)
    return i.prepare("shop", raws, single, NOW)


def faults(body: bytes, i: Ingest | None = None) -> list[tuple[int, str, str | None, int | None]]:
    with pytest.raises(Rejected) as info:
        prepare(body, i)
    return [(r.status, r.reason, r.field, r.index) for r in info.value.rejections]


def test_the_seed_events_become_web_records_keyed_by_session() -> None:
    records = prepare(json.dumps(SEED).encode())
    assert [r.key for r in records] == [SEED[0]["session_id"].encode()] * 3
    assert {r.topic for r in records} == {"t.org.gooru.da.ingest"}
    assert all(r.headers == [(FORMAT_HEADER, b"web")] for r in records)
    events = [web.parse(r.value, NOW)[0] for r in records]
    assert [e.event_type for e in events] == [
        "page interaction/pageview",
        "page interaction/cta click",
        "form interaction/submit",
    ]
    assert events[0].occurred_at == datetime(2021, 1, 1, 9, 15, 27, 243860, tzinfo=UTC)
    assert events[0].received_at == NOW and events[0].actor_id == "shop"
    assert json.loads(events[2].attributes["data"]) == SEED[2]["data"]
    # Three distinct events, each with an id that a resend of the same bytes reproduces.
    assert len({e.event_id for e in events}) == 3
    assert web.parse(prepare(json.dumps(SEED).encode())[0].value, NOW)[0] == events[0]


def event(**changes: Any) -> bytes:
    return json.dumps({**SEED[0], **changes}).encode()


def nested(depth: int) -> bytes:
    """An event whose payload holds a list nested ``depth`` deep (too deep for json.dumps)."""
    return event(data={"host": "h", "x": 0}).replace(
        b'"x": 0', b'"x": ' + b"[" * depth + b"]" * depth
    )


@pytest.mark.parametrize(
    "body,expected",
    [
        (b"", (400, "empty_body", None, None)),
        (b"  \n", (400, "empty_body", None, None)),
        (b'"just text"', (400, "not_object", None, None)),
        (b"[1, 2", (400, "bad_json", None, None)),
        (b"[]", (400, "empty_batch", None, None)),
        (b'{"session_id": "s",', (400, "bad_json", None, None)),
        (event(data={}), (422, "empty_payload", "data", None)),
        (event(data="a string"), (422, "bad_type", "data", None)),
        (event(data=["x"]), (422, "bad_type", "data", None)),
        (event(session_id=42), (422, "bad_type", "session_id", None)),
        (event(session_id=""), (422, "missing_field", "session_id", None)),
        (event(timestamp="yesterday"), (422, "bad_type", "timestamp", None)),
        (event(timestamp="2024-05-01T12:02:00Z"), (422, "future_timestamp", "timestamp", None)),
        (event(data={"host": "h", "path": 7}), (422, "bad_payload", "data.path", None)),
        (event(data={"host": "h", "path": "no-slash"}), (422, "bad_payload", "data.path", None)),
        (event(name="nonesuch"), (422, "unknown_event_type", "name", None)),
        (json.dumps([SEED[0]] * 11).encode(), (413, "batch_too_large", None, None)),
        # What no later stage could carry or store is refused here, not accepted and lost.
        (event(timestamp="0001-01-01T00:30:00+01:00"), (422, "bad_timestamp", "timestamp", None)),
        (event(timestamp="9999-12-31T23:59:59-01:00"), (422, "bad_timestamp", "timestamp", None)),
        (event(data={"host": "h", "path": "/\x00"}), (422, "unstorable_text", "data.path", None)),
        (event(data={"host": "h", "q\x00": 1}), (422, "unstorable_text", "data", None)),
        (event(data={"host": "h", "x": "\udc80"}), (422, "unstorable_text", "data.x", None)),
        (nested(100), (422, "too_deep", None, None)),
        (nested(955), (422, "too_deep", None, None)),
        (nested(10_000), (422, "too_deep", None, None)),
        (b"[" * 10_000 + b"]" * 10_000, (422, "too_deep", None, None)),
    ],
)
def test_each_fault_has_its_status_reason_and_field(
    body: bytes, expected: tuple[int, str, str | None, int | None]
) -> None:
    assert faults(body) == [expected]


def test_a_missing_field_is_named() -> None:
    body = json.dumps({k: v for k, v in SEED[0].items() if k != "category"}).encode()
    assert faults(body) == [(422, "missing_field", "category", None)]


def test_within_the_skew_the_future_is_accepted() -> None:
    assert prepare(event(timestamp="2024-05-01T12:00:59+00:00"))


def test_a_batch_is_refused_whole_naming_each_bad_event() -> None:
    body = json.dumps([SEED[0], {**SEED[1], "data": {}}, SEED[2], {**SEED[0], "name": 1}])
    assert faults(body.encode()) == [
        (422, "empty_payload", "data", 1),
        (422, "bad_type", "name", 3),
    ]


def test_an_event_gep_could_not_carry_once_re_encoded_is_413() -> None:
    # ~36 KB posted; each 9e15 comes out of GEP as 9000000000000000.0: ~114 KB, over the
    # 100,000-byte records this collector's stages may produce.
    lenient = ingest(EventTypes.load(DEFAULT_DIR, accept_unknown=True))
    body = event(name="nonesuch", data={"n": [9e15] * 6000}).replace(b"9000000000000000.0", b"9e15")
    assert len(body) < 40_000
    assert faults(body, lenient) == [(413, "event_too_large", "data", None)]
    assert prepare(event(name="nonesuch", data={"n": [9e15] * 1000}), lenient)


def test_unknown_types_pass_when_configured() -> None:
    lenient = ingest(EventTypes.load(DEFAULT_DIR, accept_unknown=True))
    assert prepare(event(name="nonesuch", data={"anything": [1]}), lenient)


@pytest.mark.parametrize("path", sorted(DEFAULT_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_event_type_example_passes_its_schema(path: Any) -> None:
    spec = json.loads(path.read_text())
    t = TYPES.by_type[(spec["category"], spec["name"])]
    assert t.examples
    for example in t.examples:
        TYPES.check(t.category, t.name, example)


def test_a_dead_letter_of_the_collector_becomes_an_error_row() -> None:
    i = ingest()
    with pytest.raises(Rejected) as info:
        prepare(event(data={}), i)
    letter = i.dead_letter(info.value.rejections[0], "shop", NOW)
    assert letter.topic == "t.org.gooru.da.dlq.collector"
    row = to_record(FakeMessage(letter.value, _headers=letter.headers, _offset=7))
    assert (row.stage, row.app, row.status, row.reason, row.field) == (
        "collector",
        "shop",
        422,
        "empty_payload",
        "data",
    )
    assert json.loads(row.body) == {**SEED[0], "data": {}} and row.failed_at == NOW


def test_gep_dead_letters_name_the_app_from_the_record() -> None:
    value = web_post.envelope("shop", NOW, b'{"session_id": 1}')
    headers = [("da-reason", b"bad_type"), ("da-stage", b"gep"), (FORMAT_HEADER, b"web")]
    row = to_record(FakeMessage(value, _headers=headers))
    assert (row.app, row.reason) == ("shop", "bad_type")
    # Only the collector's own records name an authenticated app.
    other = to_record(FakeMessage(value, _headers=[("da-stage", b"gep")]))
    assert other.app is None


def test_an_unauthenticated_body_never_names_the_app_of_its_error_row() -> None:
    i = ingest()
    claim = json.dumps({**SEED[0], "app": "victim", "data": {}}).encode()
    letter = i.dead_letter(Rejection(401, "missing_key", "no key", body=claim), None, NOW)
    row = to_record(FakeMessage(letter.value, _headers=letter.headers))
    assert (row.app, row.status, row.reason) == (None, 401, "missing_key")
    assert json.loads(row.body)["app"] == "victim"  # kept, but only inside the body


def test_an_error_row_is_bounded_and_storable_whatever_the_dead_letter_holds() -> None:
    body = b'{"app": "' + b"a" * 20_000 + b'", "x": "\x00"}' + b"z" * 100_000
    headers = [
        ("da-stage", b"collector"),
        ("da-app", b"b" * 10_000),
        ("da-reason", b"r" * 10_000),
        ("da-status", b"99999999999"),
        ("da-field", b"f\x00" * 10_000),
        ("da-detail", b"d" * 10_000),
        ("da-failed-at", b"0001-01-01T00:30:00+01:00"),
    ]
    row = to_record(FakeMessage(body, _headers=headers))
    assert row.body_bytes == len(body) and len(row.body) <= 65536
    texts = [row.stage, row.app, row.reason, row.detail, row.field, row.body]
    assert all(t is not None and "\x00" not in t for t in texts)
    assert max(len(t or "") for t in texts[:5]) <= 2000 and row.status is None
    assert len(row.app or "") <= 200 and len(row.reason) <= 100


def test_token_bucket_refuses_past_the_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limits = RateLimits(10.0, clock=lambda: now[0])
    assert limits.take("a", None, 10) == 0
    assert limits.take("a", None, 1) == 1  # empty: retry in (at least) a second
    assert limits.take("b", None, 5) == 0  # apps do not share a bucket
    now[0] = 0.5
    assert limits.take("a", None, 5) == 0
    bucket = TokenBucket(2.0, clock=lambda: now[0])
    assert bucket.take(50) == 0  # a batch bigger than the bucket passes once, in debt
    assert bucket.take(1) > 20


class _SilentProducer:
    """A broker that never acknowledges."""

    def __init__(self) -> None:
        self.produced = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.produced += 1

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return self.produced


def test_no_acknowledgement_in_time_is_an_error_not_a_hang() -> None:
    fake = _SilentProducer()
    producer = AsyncProducer(fake)  # type: ignore[arg-type]
    records = [Record("t", b"k", b"v", [])] * 3

    async def post() -> None:
        await producer.send(records, 0.2)

    try:
        with pytest.raises(NotAcknowledged, match=r"within 0\.2 s"):
            asyncio.run(post())
    finally:
        producer.close(0)
    assert fake.produced == 3


def test_web_records_decode_as_the_envelope_gep_expects() -> None:
    value = prepare(event())[0].value
    env = msgspec.json.decode(value)
    assert env["app"] == "shop" and env["event"] == SEED[0]
    assert web.looks_like(env)


def test_each_table_the_query_api_reads_is_kept_by_the_dep_it_names() -> None:
    # The collector reads it from that DEP's database (DA_DEP_<NAME>_DATABASE_URL).
    from collector import query
    from common.stages import DEPS

    for table in query.TABLES:
        assert table.name in DEPS[table.owner].tables
