"""The ``collector-errors`` DEP on a real PostgreSQL: whatever a dead letter holds (huge or
NUL-laden headers, claims of an app, bodies of any size and bytes), its row is stored, bounded,
and its ``app`` is only ever an authenticated one. Hypothesis drives the headers and bodies."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from common import db
from common.settings import Settings
from dep import registry
from dep.collector_errors import CollectorErrors, to_record
from tests.fakes import FakeMessage

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_offsets = itertools.count()
NAMES = ["da-stage", "da-app", "da-reason", "da-detail", "da-field", "da-status", "da-failed-at"]
header_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"collector", b"gep", b"web", b"\x00", b"a" * 20_000, b"\xff\xfe", b"99999999999"]
    ),
    st.sampled_from([b"0001-01-01T00:30:00+01:00", "²".encode(), b"422"]),
)
headers = st.lists(st.tuples(st.sampled_from([*NAMES, "da-format"]), header_values), max_size=10)
bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b'{"app": "' + b"v" * 20_000 + b'"}', b"\x00" * 70_000]),
    st.builds(lambda app: json.dumps({"app": app}).encode(errors="surrogatepass"), st.text()),
)


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    db.migrate(settings, registry.all_migrations())
    with db.connect(settings) as c:
        yield c


def store(conn: psycopg.Connection[tuple[object, ...]], msg: FakeMessage) -> tuple[Any, ...]:
    with conn.cursor() as cur:
        CollectorErrors().handle([to_record(msg)], cur)
        cur.execute(
            "SELECT stage, app, status, reason, length(detail), length(field), length(body), "
            "body_bytes FROM collector_errors WHERE dlq_offset = %s",
            (msg.offset(),),
        )
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    return row


@FUZZ
@seed(9)
@given(hdrs=headers, body=bodies)
def test_every_dead_letter_becomes_a_bounded_row(
    conn: psycopg.Connection[tuple[object, ...]], hdrs: list[tuple[str, bytes]], body: bytes
) -> None:
    msg = FakeMessage(body, _headers=hdrs, _offset=next(_offsets))
    stage, app, status, reason, detail, field, kept, length = store(conn, msg)
    assert length == len(body) and isinstance(kept, int) and kept <= 65536
    assert len(reason) <= 100 and len(stage) <= 100 and len(app or "") <= 200
    assert detail <= 2000 and (field or 0) <= 500
    assert status is None or 0 <= status < 1000


def test_an_unauthenticated_claim_of_an_app_is_not_the_rows_app(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    claim = json.dumps({"app": "victim" * 2000, "data": {}}).encode()
    unauthenticated = [("da-stage", b"collector"), ("da-reason", b"missing_key")]
    row = store(conn, FakeMessage(claim, _headers=unauthenticated, _offset=next(_offsets)))
    assert (row[0], row[1], row[3]) == ("collector", None, "missing_key")
    authenticated = [*unauthenticated, ("da-app", b"shop")]
    assert (
        store(conn, FakeMessage(claim, _headers=authenticated, _offset=next(_offsets)))[1] == "shop"
    )
