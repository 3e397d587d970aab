"""The collector over HTTP, with the real pipeline behind it: ``da collector run``, GEP, demux and
the two DEPs as processes on real Kafka and PostgreSQL. One set of processes serves the module."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.stages import all_topics
from collector_client import Collector
from common import db
from common.kafka import ensure_topics, make_producer
from common.settings import Settings
from common.topics import Topics
from dep import registry
from tests.services import Services, drop_namespace
from tests.unit.test_collector import SEED

REPO = Path(__file__).resolve().parents[2]
PROCESSES = {
    "collector": ["collector", "run"],
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "web-events": ["dep", "run", "web-events"],
    "errors": ["dep", "run", "collector-errors"],
}


def da(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    url: str
    keys: dict[str, str] = field(default_factory=dict)

    def post(self, body: bytes | Any, key: str | None = "shop") -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.keys.get(key, key)}"} if key else {}
        return httpx.post(f"{self.url}/v1/events", content=content, headers=headers, timeout=10)

    def get(self, path: str, **params: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.keys['shop']}"}
        return httpx.get(f"{self.url}{path}", params=params, headers=auth, timeout=10)

    def until(self, path: str, check: Callable[[list[Any]], bool], **params: Any) -> list[Any]:
        """Every item of a paginated read once ``check`` holds (the pipeline is asynchronous)."""
        deadline = time.monotonic() + 60
        while True:
            items: list[Any] = []
            cursor = None
            while True:
                r = self.get(path, **params, **({"cursor": cursor} if cursor else {}))
                assert r.status_code == 200, r.text
                page = r.json()
                items += page[path.rsplit("/", 1)[1]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            if check(items) or time.monotonic() > deadline:
                return items
            time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        services.kafka_bootstrap_servers,
        services.database_url,
        namespace=f"c{tag}",
        database_schema=f"c_{tag}",
        partitions=3,
        poll_timeout_s=0.1,
        io_timeout_s=10,
    )
    port = free_port()
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("DA_")},
        "DA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DA_DATABASE_URL": settings.database_url,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_POLL_TIMEOUT_S": "0.1",
        "DA_COLLECTOR_PORT": str(port),
        "DA_COLLECTOR_MAX_BODY_BYTES": "20000",
        "DA_COLLECTOR_MAX_SKEW_S": "60",
        "DA_COLLECTOR_APPS_REFRESH_S": "0.3",
    }
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, registry.all_migrations())
    s = Stack(settings, env, f"http://127.0.0.1:{port}")
    s.keys["shop"] = da(env, "apps", "add", "shop", "--read")
    s.keys["slow"] = da(env, "apps", "add", "slow", "--rate", "20")
    logs = tmp_path_factory.mktemp("collector")
    procs = {}
    for name, argv in PROCESSES.items():
        with (logs / f"{name}.log").open("wb") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *argv],
                env={**env, "DA_INSTANCE_ID": name},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{s.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"collector not ready: {(logs / 'collector.log').read_text()[-2000:]}")
        yield s
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        exits = {n: p.wait(timeout=60) for n, p in procs.items()}
        drop_namespace(settings)
    tails = {n: (logs / f"{n}.log").read_text()[-800:] for n in procs}
    assert set(exits.values()) == {0}, (exits, tails)


def in_session(session: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "session_id": session} for e in events]


def test_the_seed_events_are_accepted_and_queryable(stack: Stack) -> None:
    session = str(uuid.uuid4())
    r = stack.post(in_session(session, SEED))
    assert (r.status_code, r.json()) == (202, {"accepted": 3})
    got = stack.until("/v1/events", lambda items: len(items) >= 3, session_id=session)
    assert [(e["category"], e["name"]) for e in got] == sorted(
        (e["category"], e["name"]) for e in SEED
    ) or len(got) == 3
    assert {json.dumps(e["data"], sort_keys=True) for e in got} == {
        json.dumps(e["data"], sort_keys=True) for e in SEED
    }
    assert all(
        e["app"] == "shop" and e["occurred_at"] == "2021-01-01T09:15:27.243860Z" for e in got
    )
    # Resending the same bytes (a client retry) stores nothing twice.
    assert stack.post(in_session(session, SEED)).status_code == 202
    forms = stack.get("/v1/events", session_id=session, category="form interaction").json()
    assert [e["name"] for e in forms["events"]] == ["submit"]
    time.sleep(1)
    assert len(stack.get("/v1/events", session_id=session).json()["events"]) == 3


def test_time_range_is_inclusive_and_pages_follow_the_cursor(stack: Stack) -> None:
    session = str(uuid.uuid4())
    base = datetime(2022, 3, 1, 10, 0, tzinfo=UTC)
    events = [
        {**SEED[0], "session_id": session, "timestamp": (base + timedelta(minutes=i)).isoformat()}
        for i in range(5)
    ]
    assert stack.post(events).status_code == 202
    stack.until("/v1/events", lambda items: len(items) >= 5, session_id=session)
    since, until = (
        (base + timedelta(minutes=1)).isoformat(),
        (base + timedelta(minutes=3)).isoformat(),
    )
    first = stack.get("/v1/events", session_id=session, since=since, until=until, limit=2).json()
    assert len(first["events"]) == 2 and first["next_cursor"]
    rest = stack.get(
        "/v1/events", session_id=session, since=since, until=until, cursor=first["next_cursor"]
    ).json()
    times = [e["occurred_at"] for e in first["events"] + rest["events"]]
    assert times == ["2022-03-01T10:01:00Z", "2022-03-01T10:02:00Z", "2022-03-01T10:03:00Z"]
    assert rest["next_cursor"] is None
    by_time = stack.get("/v1/events", since="2022-03-01 10:04:00", until="2022-03-01T10:04:00Z")
    assert session in {e["session_id"] for e in by_time.json()["events"]}


@pytest.mark.parametrize(
    "param", [{"since": "yesterday"}, {"until": "2021-13-45"}, {"cursor": "x!"}, {"limit": "0"}]
)
def test_a_malformed_query_is_a_400(stack: Stack, param: dict[str, str]) -> None:
    r = stack.get("/v1/events", **param)
    assert r.status_code == 400 and r.json()["field"] == next(iter(param))


def test_each_bad_post_gets_its_status_and_lands_in_the_errors_table(stack: Stack) -> None:
    marker = uuid.uuid4().hex
    good = {**SEED[0], "session_id": marker}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    revoked_key = da(stack.env, "apps", "add", f"gone-{marker[:6]}")
    time.sleep(1)  # the collector re-reads the applications every 0.3 s here
    assert stack.post(good, revoked_key).status_code == 202
    da(stack.env, "apps", "revoke", f"gone-{marker[:6]}")
    time.sleep(1)  # the collector re-reads the applications every 0.3 s here
    cases: list[tuple[bytes | Any, str | None, int, str]] = [
        ({**good, "data": {}}, "shop", 422, "empty_payload"),
        ({**good, "data": "not an object"}, "shop", 422, "bad_type"),
        ({**good, "timestamp": future}, "shop", 422, "future_timestamp"),
        ({**good, "category": 5}, "shop", 422, "bad_type"),
        (json.dumps({**good, "data": {"x": "y" * 30_000}}).encode(), "shop", 413, "body_too_large"),
        (f'{{"session_id": "{marker}", '.encode(), "shop", 400, "bad_json"),
        (good, None, 401, "missing_key"),
        (good, "da_not-a-key", 401, "invalid_key"),
        (good, revoked_key, 401, "invalid_key"),
    ]
    for body, key, status, reason in cases:
        r = stack.post(body, key)
        assert (r.status_code, r.json()["reason"] if status != 422 or "reason" in r.json() else "")[
            0
        ] == status, (reason, r.text)
        assert reason in r.text, r.text
    rows = stack.until(
        "/v1/errors", lambda items: sum(marker in e["body"] for e in items) >= len(cases)
    )
    mine = [(e["status"], e["reason"], e["app"]) for e in rows if marker in e["body"]]
    assert sorted(mine, key=str) == sorted(
        [(s, reason, "shop" if k == "shop" else None) for _, k, s, reason in cases], key=str
    )
    fields = {e["reason"]: e["field"] for e in rows if marker in e["body"] and e["field"]}
    assert fields["empty_payload"] == "data" and fields["future_timestamp"] == "timestamp"
    listed = da(stack.env, "apps", "list")
    assert "revoked" in listed and revoked_key not in listed


def test_an_errors_row_names_only_an_authenticated_app_and_nothing_is_lost_silently(
    stack: Stack,
) -> None:
    marker = uuid.uuid4().hex
    victim = f"victim-{marker}"
    good = {**SEED[0], "session_id": marker}
    # Unauthenticated bodies that claim an app (one long enough to overflow an index), then
    # a NUL in a payload from a real app: refused at the door, not accepted and lost later.
    assert stack.post({**good, "app": victim}, None).status_code == 401
    assert stack.post({**good, "app": victim * 300}, "da_forged").status_code == 401
    r = stack.post({**good, "data": {"host": "h", "path": "/\x00"}})
    assert (r.status_code, r.json()["reason"], r.json()["field"]) == (
        422,
        "unstorable_text",
        "data.path",
    )
    rows = stack.until("/v1/errors", lambda items: sum(marker in e["body"] for e in items) >= 3)
    mine = sorted((e["reason"], e["app"]) for e in rows if marker in e["body"])
    assert mine == [("invalid_key", None), ("missing_key", None), ("unstorable_text", "shop")]
    assert stack.get("/v1/errors", app=victim).json()["errors"] == []


def test_a_bad_web_record_found_later_by_gep_is_an_error_too(stack: Stack) -> None:
    marker = uuid.uuid4().hex
    record = json.dumps(
        {
            "app": "shop",
            "received_at": "2024-01-01T00:00:00Z",
            "event": {"session_id": marker, "category": "c"},
        }
    ).encode()
    producer = make_producer(stack.settings)
    producer.produce(
        Topics(stack.settings.namespace).ingest,
        record,
        marker.encode(),
        headers=[("da-format", b"web")],
    )
    assert producer.flush(10) == 0
    rows = stack.until(
        "/v1/errors", lambda items: any(marker in e["body"] for e in items), stage="gep"
    )
    [row] = [e for e in rows if marker in e["body"]]
    assert (row["stage"], row["app"], row["reason"]) == ("gep", "shop", "missing_field")


def test_concurrent_posts_for_one_session_come_back_in_time_order(stack: Stack) -> None:
    session = str(uuid.uuid4())
    base = datetime(2023, 6, 1, tzinfo=UTC)
    # 200 events, posted by 8 threads in an order unrelated to their times.
    stamps = [base + timedelta(milliseconds=(i * 7919) % 200) for i in range(200)]
    posts = [
        [{**SEED[1], "session_id": session, "timestamp": t.isoformat()} for t in stamps[i::20]]
        for i in range(20)
    ]
    with ThreadPoolExecutor(8) as pool:
        assert {r.status_code for r in pool.map(stack.post, posts)} == {202}
    got = stack.until("/v1/events", lambda items: len(items) >= 200, session_id=session, limit=37)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in got]
    assert len(times) == 200 and times == sorted(stamps)


def test_the_client_batches_and_retries_until_everything_is_in(stack: Stack) -> None:
    session = str(uuid.uuid4())
    # "slow" may post 20 events a second: 60 events in batches of 10 meet 429s and retry.
    with Collector(stack.url, stack.keys["slow"], batch_size=10, flush_interval_s=0.05) as eye:
        for i in range(60):
            eye.send(session, "page interaction", "pageview", {"host": "h", "path": f"/{i}"})
    assert (eye.sent, eye.rejected) == (60, []) and eye.retries > 0
    got = stack.until("/v1/events", lambda items: len(items) >= 60, session_id=session)
    assert sorted(e["data"]["path"] for e in got) == sorted(f"/{i}" for i in range(60))


def test_health_docs_and_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{stack.url}/readyz").json() == {"kafka": True, "database": True}
    assert "swagger" in httpx.get(f"{stack.url}/docs").text.lower()
    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/errors"} <= set(paths)
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert "collector_events_accepted_total" in metrics
    # An app without the read scope cannot query.
    r = httpx.get(
        f"{stack.url}/v1/events", headers={"Authorization": f"Bearer {stack.keys['slow']}"}
    )
    assert r.status_code == 403
