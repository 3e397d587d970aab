"""The collector's doors, tried as an attacker would, on a real Kafka and PostgreSQL: whatever a
client sends (body, headers, query string, cursor), the answer is never a 500. Hypothesis drives
the real server (``da collector run``) over HTTP; fixed seed, bounded examples."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cli.stages import all_topics
from collector import apps
from common import db
from common.kafka import ensure_topics
from common.settings import Settings
from dep import registry
from tests.e2e.test_collector import REPO, free_port
from tests.nasty import NASTY_TEXT, deep, nasty_json, nasty_scalars
from tests.services import Services, drop_namespace
from tests.unit.test_collector import SEED

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every answer a client may get; a 500 (or anything unlisted) fails the test.
ANSWERS = {200, 202, 400, 401, 403, 413, 422, 429, 503}


@dataclass
class Door:
    client: httpx.Client
    settings: Settings
    key: str

    def auth(self, key: str | None) -> dict[bytes, bytes]:
        """``key``: "" the app's own, None none; any text (latin-1, as HTTP carries it)."""
        if key is None:
            return {}
        return {b"Authorization": f"Bearer {self.key if key == '' else key}".encode("latin-1")}

    def post(self, body: bytes, key: str | None = "", **headers: str) -> Any:
        sent = {k.encode(): v.encode("latin-1") for k, v in headers.items()}
        r = self.client.post("/v1/events", content=body, headers={**self.auth(key), **sent})
        return self.check(r)

    def get(self, path: str, params: Any, key: str | None = "") -> Any:
        return self.check(self.client.get(path, params=params, headers=self.auth(key)))

    @staticmethod
    def check(r: httpx.Response) -> httpx.Response:
        assert r.status_code in ANSWERS, (r.status_code, r.text[:500])
        if r.status_code >= 400:
            assert r.json()["reason"], r.text
        return r


@pytest.fixture(scope="module")
def door(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    tag = uuid.uuid4().hex[:10]
    s = Settings(
        services.kafka_bootstrap_servers,
        services.database_url,
        namespace=f"d{tag}",
        database_schema=f"d_{tag}",
        partitions=1,
        io_timeout_s=10,
        collector_rate_limit=1e9,
    )
    ensure_topics(s, all_topics(s))
    db.migrate(s, registry.all_migrations() + apps.MIGRATIONS)
    with db.connect(s) as conn:
        key = apps.add(conn, "shop", ("ingest", "read"), None)
        conn.commit()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DA_")},
        "DA_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "DA_DATABASE_URL": s.database_url,
        "DA_NAMESPACE": s.namespace,
        "DA_DATABASE_SCHEMA": s.database_schema,
        "DA_COLLECTOR_PORT": str(port),
        "DA_COLLECTOR_RATE_LIMIT": "1e9",
        # Unknown event types pass, so that arbitrary payloads reach every later check.
        "DA_COLLECTOR_UNKNOWN_TYPES": "accept",
    }
    log = tmp_path_factory.mktemp("doors") / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "collector", "run"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"collector not ready: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Door(client, s, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        drop_namespace(s)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def as_body(doc: Any) -> bytes:
    return json.dumps(doc).encode(errors="surrogatepass")


events = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.one_of(st.just("s-1"), nasty_scalars),
        "category": st.one_of(st.just("page interaction"), nasty_scalars),
        "name": st.one_of(st.just("pageview"), nasty_scalars),
        "data": st.one_of(
            st.just({"host": "h", "path": "/"}),
            st.dictionaries(st.sampled_from(["host", "path", *NASTY_TEXT]), nasty_json(3)),
            nasty_scalars,
        ),
        "timestamp": st.one_of(st.just("2021-01-01T00:00:00Z"), nasty_scalars),
        "app": st.sampled_from(["victim", "a" * 10_000]),
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    deep(),
    events.map(as_body),
    st.lists(events, max_size=4).map(as_body),
    nasty_json(3).map(as_body),
)


@FUZZ
@seed(9)
@given(
    body=bodies,
    key=st.sampled_from(["", None, "da_nope", "\u00e9\u00ff", "x" * 5000, "a b"]),
    headers=st.dictionaries(
        st.sampled_from(["Content-Type", "Content-Encoding", "X-Forwarded-For", "Authorization"]),
        st.sampled_from(
            [
                "application/json",
                "text/plain",
                "gzip",
                "\u00ff",
                "Basic YTpi",
                "Bearer",
                "",
                "x" * 4000,
            ]
        ),
        max_size=3,
    ),
)
def test_no_post_is_ever_a_500(
    door: Door, body: bytes, key: str | None, headers: dict[str, str]
) -> None:
    door.post(body, key, **headers)


_cursor_docs = st.one_of(
    st.lists(nasty_scalars, max_size=4),
    st.tuples(
        st.sampled_from(["web_events", "collector_errors", "x"]),
        st.sampled_from(["2021-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "nope", 5]),
        nasty_scalars,
    ).map(list),
    nasty_json(2),
)
cursors = st.one_of(
    st.text(max_size=30),
    _cursor_docs.map(lambda d: base64.urlsafe_b64encode(as_body(d)).decode()),
)


def often(usual: Any, *nasty: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value that passes the earlier checks (so later ones are reached), else nasty."""
    return st.one_of(st.just(usual), st.just(usual), *nasty)


_filter = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=20))
_filters = st.fixed_dictionaries(
    {},
    optional={
        **{name: _filter for name in ("session_id", "category", "app", "reason", "stage")},
        "since": often(
            "2021-01-01", st.sampled_from([*NASTY_TEXT, "-1", "0001-01-01T00:00:00-14:00"])
        ),
        "until": often("2031-01-01", st.sampled_from([*NASTY_TEXT, "9999-12-31T23:59:59-14:00"])),
        "limit": often(10, st.integers(), st.sampled_from(NASTY_TEXT)),
    },
)
# A cursor is mostly refused before the filters reach the database: half the queries have none.
params = st.one_of(_filters, st.builds(lambda f, c: {**f, "cursor": c}, _filters, cursors))


@FUZZ
@seed(9)
@given(path=st.sampled_from(["/v1/events", "/v1/errors"]), query=params)
def test_no_query_is_ever_a_500(door: Door, path: str, query: dict[str, Any]) -> None:
    # Text the URL cannot carry is the client's to encode; what arrives is what is tried.
    sendable = {
        k: v.encode(errors="surrogatepass").decode(errors="replace") if isinstance(v, str) else v
        for k, v in query.items()
    }
    door.get(path, sendable)


def forged(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        forged([1, 2]),
        forged(["2021-01-01T00:00:00Z", {"a": 1}]),
        forged(["web_events", "2021-01-01T00:00:00Z", 5]),
        forged(["collector_errors", "2021-01-01T00:00:00Z", "id"]),
        forged(["collector_errors", "2021-01-01T00:00:00Z", 2**70]),
        forged(["web_events", "nope", "k"]),
        forged(["2021-01-01T00:00:00Z", "k"]),  # the old shape, from either endpoint
        "%%%",
    ],
)
def test_a_forged_cursor_is_a_400(door: Door, cursor: str) -> None:
    for path in ("/v1/events", "/v1/errors"):
        r = door.get(path, {"cursor": cursor})
        assert (r.status_code, r.json()["field"]) == (400, "cursor")


def test_a_cursor_of_one_endpoint_is_refused_by_the_other(door: Door) -> None:
    with db.connect(door.settings) as conn:
        for i in range(3):
            conn.execute(
                "INSERT INTO collector_errors (stage, reason, detail, body, body_bytes, failed_at, "
                "dlq_topic, dlq_partition, dlq_offset) "
                "VALUES ('gep', 'x', '', '', 0, now(), 't', 0, %s)",
                (i,),
            )
        conn.commit()
    page = door.get("/v1/errors", {"limit": 1}).json()
    assert page["next_cursor"]
    assert door.get("/v1/errors", {"cursor": page["next_cursor"]}).status_code == 200
    r = door.get("/v1/events", {"cursor": page["next_cursor"]})
    assert (r.status_code, r.json()["field"]) == (400, "cursor")


@pytest.mark.parametrize("name", ["session_id", "category", "app"])
def test_nul_in_a_filter_is_a_400_naming_it(door: Door, name: str) -> None:
    r = door.get("/v1/events", {name: "a\x00b"})
    assert (r.status_code, r.json().get("field")) == (400, name), r.text[:300]


def test_a_stored_payload_too_deep_for_a_json_parser_still_reads(door: Door) -> None:
    # The collector now refuses such an event; one stored by another road must not turn every
    # page that includes it into a 500.
    session = uuid.uuid4().hex
    deep_data = '{"x": ' + "[" * 2000 + "]" * 2000 + "}"
    with db.connect(door.settings) as conn:
        conn.execute(
            "INSERT INTO web_events (event_id, session_id, app, category, name, occurred_at, "
            "received_at, data) VALUES (%s, %s, 'shop', 'c', 'n', now(), now(), %s)",
            (session, session, deep_data),
        )
        conn.commit()
    r = door.get("/v1/events", {"session_id": session})
    assert r.status_code == 200
    assert b'"data":{"x": ' + b"[" * 2000 in r.content  # passed through as stored


def event(**changes: Any) -> dict[str, Any]:
    return {**SEED[0], "session_id": uuid.uuid4().hex, **changes}


@pytest.mark.parametrize(
    "body,status,reason",
    [
        (event(timestamp="0001-01-01T00:30:00+01:00"), 422, "bad_timestamp"),
        (event(data={"host": "h", "path": "/\x00"}), 422, "unstorable_text"),
        # A well-formed event whose payload is nested ~955 deep (what used to be accepted and
        # then broke every GET page): refused for its depth, however deep the server's stack.
        (
            as_body(event(data={"x": "DEEP"})).replace(b'"DEEP"', b"[" * 955 + b"]" * 955),
            422,
            "too_deep",
        ),
        (b"[" * 10_000 + b"]" * 10_000, 422, "too_deep"),
        # ~300 KB posted, ~1.1 MB once GEP re-encodes each 9e15 as 9000000000000000.0.
        (
            as_body(event(name="numbers", data={"n": [0] * 60_000})).replace(b"0, ", b"9e15,"),
            413,
            "event_too_large",
        ),
    ],
)
def test_what_no_stage_could_keep_is_refused_at_the_door(
    door: Door, body: Any, status: int, reason: str
) -> None:
    r = door.post(body if isinstance(body, bytes) else as_body(body))
    assert (r.status_code, r.json()["reason"]) == (status, reason)


def form_post(size: int) -> bytes:
    """A valid form submission of exactly ``size`` bytes (each form field is at most 10,000)."""
    base = event(name="submit", category="form interaction", data={"host": "h", "path": "/"})
    form: dict[str, str] = {}
    while True:
        body = as_body({**base, "data": {**base["data"], "form": form}})
        if len(body) >= size - 10_020:
            break
        form[f"f{len(form)}"] = "x" * 10_000
    form["last"] = "x" * (size - len(body) - len(', "last": ""'))
    body = as_body({**base, "data": {**base["data"], "form": form}})
    assert len(body) == size
    return body


def test_a_body_under_the_body_limit_but_over_the_broker_limit_is_a_413(door: Door) -> None:
    # DA_COLLECTOR_MAX_BODY_BYTES and DA_MAX_MESSAGE_BYTES are both 1,000,000: a body just under
    # the first makes a record (or a dead letter) just over the second. The body limit is now
    # derived so that whatever is read fits in a record, headers included.
    assert door.settings.collector_max_body_bytes == door.settings.max_message_bytes
    near = form_post(door.settings.max_message_bytes - 50)
    for body in (near, near[:-1]):  # valid, and not even JSON
        r = door.post(body)
        assert (r.status_code, r.json()["reason"]) == (413, "body_too_large")
    assert door.post(form_post(500_000)).status_code == 202


@pytest.mark.parametrize(
    "name,value",
    [
        ("since", "2021-01-01T00:00:00+20:00"),  # an offset past PostgreSQL's ±15:59 input
        ("until", "9999-12-31T23:59:59-01:00"),  # past year 9999 in UTC
        ("since", "0001-01-01T00:30:00+01:00"),  # before year 1 in UTC
        ("cursor", forged(["web_events", "2021-01-01T00:00:00+20:00", "k"])),
    ],
)
def test_times_at_the_edges_of_the_range_are_answered(door: Door, name: str, value: str) -> None:
    r = door.get("/v1/events", {name: value})
    assert r.status_code == 200, r.text[:300]
