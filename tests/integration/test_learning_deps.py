"""The learning DEPs' handlers on a real PostgreSQL: duplicates and any arrival order give the
same tables; the roll-up emits through the outbox and stops at the hop limit; a score for
unknown content is parked, released when the content arrives, and dead-lettered when it never
does; the relay publishes the outbox to real Kafka. Each test twice: the DEPs on the shared
database, and on a PostgreSQL of their own, where their offsets, outbox and parked events must
live beside their tables (none of them in the shared database)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from common import db, parking
from common.codec import Codec
from common.deadletter import H_REASON, header
from common.errors import InvalidEvent
from common.events import Lineage, SystemEvent, UsageEvent
from common.kafka import ensure_topics, make_producer
from common.outbox import OutboxRelay
from common.settings import Settings
from common.ticks import TickHandler
from common.topics import Topics
from dep import registry
from tests.kafka_read import read_topic

CODEC = Codec()
T0 = datetime(2020, 9, 13, 12, 0, tzinfo=UTC)


def usage(name: str, root: str, value: float, *, at: int = 0, **kw: Any) -> UsageEvent:
    fields: dict[str, Any] = {
        "user_id": "u1",
        "content_id": "q1",
        "collection_id": "c1",
        "collection_type": "collection",
        "class_id": "k1",
        "session_id": "s1",
        **kw,
    }
    return UsageEvent(
        name=name,
        event_id=root,
        occurred_at=T0 + timedelta(seconds=at),
        value=value,
        lineage=Lineage(root, ("gep", "demux"), 1),
        **fields,
    )


def content(eid: str, cid: str, at: int, action: str = "created", **kw: Any) -> SystemEvent:
    return SystemEvent(
        f"content.{action}", eid, cid, T0 + timedelta(seconds=at), Lineage(eid, ("gep",), 1), **kw
    )


def apply(settings: Settings, dep: str, batches: Sequence[Sequence[Any]]) -> None:
    handler = registry.get(dep).build(settings, CODEC)
    with db.connect(settings, dep=dep) as conn:
        for batch in batches:
            with conn.transaction():
                handler.handle(batch, conn.cursor())


def rows(settings: Settings, dep: str | None, query: str) -> list[tuple[Any, ...]]:
    """``query`` in ``dep``'s database (None: the shared one)."""
    with db.connect(settings, dep=dep) as conn:
        return conn.execute(query).fetchall()


def none_shared(settings: Settings, dep: str, table: str) -> None:
    """A DEP on a database of its own left no row of ``table`` in the shared database."""
    if settings.database_url_for(dep) != settings.database_url:
        assert rows(settings, None, f"SELECT count(*) FROM {table}") == [(0,)]


@pytest.fixture
def settings(dep_settings: Settings) -> Settings:
    """Each test twice: the DEPs on the shared database, and on a PostgreSQL of their own."""
    return dep_settings


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    db.migrate(settings, registry.all_migrations())
    return settings


def test_content_catalog_keeps_the_newest_metadata_whatever_the_order(migrated: Settings) -> None:
    events = [
        content("e1", "a1", 0, content_type="assessment", competencies=("K1",)),
        content("e2", "a1", 5, "updated", content_type="assessment", competencies=("K1", "K2")),
        content("e3", "a1", 9, "deleted"),
        content("e4", "r1", 1, content_type="resource", parent_id="c1"),
    ]
    seen = set()
    for order in itertools.islice(itertools.permutations(events), 0, 24, 5):
        with db.connect(migrated, dep="content-catalog") as conn:
            conn.execute("TRUNCATE content_catalog")
            conn.commit()
        apply(migrated, "content-catalog", [[e] for e in order] + [list(order)])
        seen.add(
            tuple(
                rows(
                    migrated,
                    "content-catalog",
                    "SELECT content_id, content_type, parent_id, "
                    "array_to_string(competencies, ','), deleted FROM content_catalog "
                    "ORDER BY content_id",
                )
            )
        )
    assert seen == {
        (("a1", "assessment", None, "K1,K2", True), ("r1", "resource", "c1", "", False))
    }


def test_usage_metrics_count_each_de_once_and_never_let_older_overwrite(migrated: Settings) -> None:
    spent = [usage("usage.question.timespent", f"t{i}", 1000.0 * i, at=i) for i in range(1, 4)]
    reactions = [usage("usage.question.reaction", f"r{i}", float(i), at=10 - i) for i in (1, 2)]
    scores = [
        usage("usage.question.score", "x1", 0.0, at=1, session_id="s1"),
        usage("usage.question.score", "x2", 100.0, at=2, session_id="s2"),
        usage("usage.question.score", "x3", 50.0, at=3, session_id="s3"),
    ]
    events = spent + reactions + scores
    apply(migrated, "usage-metrics", [events[::-1], events, events[2:5]])  # replays, reversed
    assert rows(
        migrated,
        "usage-metrics",
        "SELECT user_id, content_id, class_id, course_id, time_spent_ms, latest_score, "
        "best_score, latest_reaction FROM usage_metrics",
    ) == [("u1", "q1", "k1", "", 6000, 50.0, 100.0, 1)]  # r1 is the newer reaction (at 9)


def test_a_fuller_rolled_up_session_score_supersedes_an_earlier_one(migrated: Settings) -> None:
    partial = usage("usage.collection.score", "q1", 100.0, at=5, content_id="c1", basis=1)
    full = usage("usage.collection.score", "q2", 50.0, at=5, content_id="c1", basis=2)
    apply(migrated, "usage-metrics", [[full], [partial]])
    assert rows(
        migrated, "usage-metrics", "SELECT latest_score, best_score FROM usage_metrics"
    ) == [(50.0, 50.0)]


def outbox_des(settings: Settings) -> list[UsageEvent]:
    return [
        UsageEvent.decode(CODEC, bytes(v))
        for (v,) in rows(settings, "collection-rollup", "SELECT value FROM da_outbox ORDER BY id")
    ]


def test_rollup_emits_the_collection_level_through_the_outbox_once(migrated: Settings) -> None:
    events = [
        usage("usage.question.score", "a", 100.0, at=1),
        usage("usage.question.timespent", "a", 3000.0, at=1),
        usage("usage.question.score", "b", 0.0, at=2, content_id="q2"),
        usage("usage.resource.timespent", "z", 9.0, collection_type="assessment"),  # not rolled
    ]
    apply(migrated, "collection-rollup", [events[:2], events, events[2:]])
    out = outbox_des(migrated)
    assert [(d.name, d.value, d.basis, d.content_id) for d in out] == [
        ("usage.collection.score", 100.0, 1, "c1"),
        ("usage.collection.timespent", 3000.0, 1, "c1"),
        ("usage.collection.score", 50.0, 2, "c1"),
    ]
    assert out[0].lineage == Lineage("a", ("gep", "demux", "dep.collection-rollup"), 2)
    assert out[0].collection_id is None and out[0].key == "u1|c1"
    none_shared(migrated, "collection-rollup", "da_outbox")  # committed beside its tables


def test_rollup_stops_a_chain_at_the_hop_limit(migrated: Settings) -> None:
    handler = registry.get("collection-rollup").build(replace(migrated, max_hops=2), CODEC)
    deep = usage("usage.question.timespent", "a", 1.0)
    deep = replace(deep, lineage=Lineage("a", ("gep", "demux", "dep.x"), 2))
    with db.connect(migrated, dep="collection-rollup") as conn, pytest.raises(InvalidEvent) as info:
        handler.handle([deep], conn.cursor())
    assert info.value.reason == "hop_limit"
    assert "gep > demux > dep.x > dep.collection-rollup" in info.value.detail


def test_a_score_for_unknown_content_is_parked_then_released(migrated: Settings) -> None:
    score = usage("usage.assessment.score", "s", 80.0, content_id="a1")
    other = usage("usage.assessment.score", "o", 60.0, content_id="a2", user_id="u2")
    apply(migrated, "competency-stats", [[score, other], [score]])
    assert rows(migrated, "competency-stats", "SELECT count(*) FROM competency_stats") == [(0,)]
    with db.connect(migrated, dep="competency-stats") as conn:
        [s] = parking.summary(conn)
    assert (s.owner, s.count, s.waiting_for) == ("competency-stats", 2, 2)
    none_shared(migrated, "competency-stats", "da_parked")
    apply(migrated, "competency-stats", [[content("e1", "a1", 0, competencies=("K1", "K2"))]])
    assert rows(
        migrated,
        "competency-stats",
        "SELECT user_id, competency, attempts, latest_score, best_score "
        "FROM competency_stats ORDER BY competency",
    ) == [("u1", "K1", 1, 80.0, 80.0), ("u1", "K2", 1, 80.0, 80.0)]
    apply(migrated, "competency-stats", [[score]])  # a late duplicate changes nothing
    assert rows(migrated, "competency-stats", "SELECT sum(attempts) FROM competency_stats") == [
        (2,)
    ]
    assert rows(migrated, "competency-stats", "SELECT waiting_for FROM da_parked") == [("a2",)]


def test_a_competency_named_twice_counts_a_score_once(migrated: Settings) -> None:
    # Scored first, then the content names K1 twice: the re-fan-out and the stats see one K1.
    score = usage("usage.assessment.score", "s", 80.0, content_id="a1")
    apply(migrated, "competency-stats", [[content("e1", "a1", 0, competencies=("K2",))], [score]])
    apply(
        migrated,
        "competency-stats",
        [[content("e2", "a1", 5, "updated", competencies=("K1", "K1"))]],
    )
    later = usage("usage.assessment.score", "t", 90.0, content_id="a1", session_id="s2")
    apply(migrated, "competency-stats", [[later]])
    assert rows(
        migrated,
        "competency-stats",
        "SELECT user_id, competency, attempts, latest_score, best_score FROM competency_stats",
    ) == [("u1", "K1", 2, 90.0, 90.0)]
    assert rows(migrated, "competency-stats", "SELECT competencies FROM competency_content") == [
        (["K1"],)
    ]


def test_a_parked_score_is_dead_lettered_after_the_timeout_via_kafka(migrated: Settings) -> None:
    topics = Topics(migrated.namespace)
    dlq = topics.dead_letter("dep.competency-stats")
    ensure_topics(migrated, [dlq])
    waiting = usage("usage.assessment.score", "w", 70.0, content_id="never")
    young = usage("usage.assessment.score", "y", 70.0, content_id="later")
    apply(migrated, "competency-stats", [[waiting, young]])
    with db.connect(migrated, dep="competency-stats") as conn:
        conn.execute("UPDATE da_parked SET parked_at = now() - interval '2 hours' WHERE "
                     "waiting_for = 'never'")  # fmt: skip
        conn.commit()
    apply(migrated, "competency-stats", [[content("e1", "a1", 0)]])  # a batch expires nothing
    assert rows(migrated, "competency-stats", "SELECT count(*) FROM da_parked") == [(2,)]
    handler = registry.get("competency-stats").build(migrated, CODEC)
    assert isinstance(handler, TickHandler)
    for _ in range(2):  # the timer, with no input: the old one expires, once
        with db.connect(migrated, dep="competency-stats") as conn, conn.transaction():
            handler.tick(datetime.now(UTC), frozenset({("t", 0)}), {}, conn.cursor())
    assert rows(migrated, "competency-stats", "SELECT waiting_for FROM da_parked") == [("later",)]
    producer = make_producer(migrated)
    with db.connect(migrated, dep="competency-stats") as conn:
        assert OutboxRelay("competency-stats", producer, timeout_s=10).relay(conn) == 1
        assert OutboxRelay("competency-stats", producer, timeout_s=10).relay(conn) == 0
    [dead] = read_topic(migrated, dlq, expect=1)
    assert header(dead.headers(), H_REASON) == "parked_too_long"
    assert UsageEvent.decode(CODEC, dead.value()) == waiting


def test_the_relay_leaves_the_outbox_when_the_broker_does_not_confirm(migrated: Settings) -> None:
    apply(migrated, "collection-rollup", [[usage("usage.question.timespent", "a", 1.0)]])

    class Unconfirmed:
        def produce(self, *args: Any, **kwargs: Any) -> None:
            pass

        def flush(self, timeout: float = -1) -> int:
            return 1

    with (
        db.connect(migrated, dep="collection-rollup") as conn,
        pytest.raises(Exception, match="not acknowledged"),
    ):
        OutboxRelay("collection-rollup", Unconfirmed(), timeout_s=1).relay(conn)  # type: ignore[arg-type]
    assert rows(migrated, "collection-rollup", "SELECT count(*) FROM da_outbox") == [(1,)]


def test_migrations_are_idempotent(migrated: Settings) -> None:
    assert db.migrate(migrated, registry.all_migrations()) == []
    with psycopg.connect(migrated.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_da_parked_shows_count_and_oldest(migrated: Settings, settings_env: dict[str, str]) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cli.main", "parked"]
    none = subprocess.run(cmd, env=settings_env, check=True, capture_output=True, text=True)
    assert none.stdout.splitlines()[0] == "parked: 0"
    apply(migrated, "competency-stats", [[usage("usage.assessment.score", "w", 1.0)]])
    out = subprocess.run(cmd, env=settings_env, check=True, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "parked: 1"
    assert lines[2].split()[:2] == ["DEP", "parked"]
    assert lines[3].split()[:3] == ["competency-stats", "1", "1"]


def test_run_store_relays_the_rollups_outbox_after_each_commit(migrated: Settings) -> None:
    from common.launch import run_store
    from common.runloop import Stopper

    topics = Topics(migrated.namespace)
    spec = registry.get("collection-rollup")
    ensure_topics(migrated, [*spec.topics(topics), topics.sink("dep", "usage.collection.score")])
    ensure_topics(migrated, [topics.dead_letter("dep.collection-rollup")])
    producer = make_producer(migrated)
    des = [usage("usage.question.score", f"e{i}", 100.0 * (i % 2), at=i) for i in range(6)]
    for de in des + des[:2]:  # two duplicates
        producer.produce(topics.sink("demux", de.name), de.encode(CODEC), de.key.encode())
    assert producer.flush(10) == 0
    run_store(
        migrated,
        "dep.collection-rollup",
        spec.build(migrated, CODEC),
        spec.topics(topics),
        Stopper(),
        outbox_owner=spec.name,
        max_messages=8,
        idle_stop_s=15,
    )
    out = read_topic(migrated, topics.sink("dep", "usage.collection.score"), expect=6)
    got = sorted(UsageEvent.decode(CODEC, m.value()).basis for m in out)
    assert got == [1, 2, 3, 4, 5, 6]
    assert rows(migrated, "collection-rollup", "SELECT count(*) FROM da_outbox") == [(0,)]
    # The offsets moved in the transactions that wrote its tables, in its own database.
    offsets = (
        "SELECT sum(next_offset) FROM da_offsets WHERE consumer_group LIKE '%collection-rollup'"
    )
    assert rows(migrated, "collection-rollup", offsets) == [(8,)]
    none_shared(migrated, "collection-rollup", "da_offsets")


@pytest.mark.parametrize("update_first", [False, True])
def test_scores_follow_the_contents_newest_competencies_whatever_the_order(
    migrated: Settings, update_first: bool
) -> None:
    created = content("e1", "a1", 0, content_type="assessment", competencies=("K1",))
    updated = content("e2", "a1", 5, "updated", content_type="assessment", competencies=("K2",))
    first = usage("usage.assessment.score", "s1", 40.0, at=1, content_id="a1", session_id="x")
    second = usage("usage.assessment.score", "s2", 90.0, at=9, content_id="a1", session_id="y")
    batches: list[list[Any]] = [[created], [first], [updated], [second]]
    if update_first:
        batches = [[updated], [created], [first], [second]]
    apply(migrated, "competency-stats", batches)
    assert rows(
        migrated,
        "competency-stats",
        "SELECT user_id, competency, attempts, latest_score, best_score FROM competency_stats",
    ) == [("u1", "K2", 2, 90.0, 90.0)]
