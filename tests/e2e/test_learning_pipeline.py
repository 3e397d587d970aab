"""The learning pipeline end to end: GEP, demux and every learning DEP as real processes on real
Kafka and PostgreSQL, fed ``da sample learning``'s class (both Gooru formats, core-system
content, EdMobile) with duplicates, events out of order, the metadata of some content held back
until after every play of it, and bad messages, while stages are killed (SIGKILL) and restarted.
Every DE topic and every learning table must equal ``tests.learning_oracle``'s computation."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.sample_learning import generate
from common import db
from common.codec import Codec
from common.deadletter import H_REASON, header
from common.events import SystemEvent, UsageEvent
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import Stages, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic
from tests.learning_des import De, SysDe
from tests.learning_oracle import Expected, expected

DEPS = ("content-catalog", "usage-metrics", "collection-rollup", "competency-stats")
COMMANDS = {"gep": ["gep", "run"], "demux": ["demux", "run"]} | {d: ["dep", "run", d] for d in DEPS}
LATE = ("asmt-1-1", "coll-2-1")  # their metadata arrives after every play of them
BAD: list[tuple[dict[str, Any], str, str | None]] = [  # line, reason, da-index
    (
        {
            "format": "gooru.logwriter",
            "key": "x",
            "value": {
                "eventId": "bad-1",
                "eventName": "collection.start",
                "userId": "learner-01",
                "activityTime": 1600070000,
                "collectionId": "coll-1-1",
                "collectionType": "collection",
            },
        },
        "bad_timestamp",
        None,
    ),
    (
        {
            "format": "gooru.system",
            "key": "x",
            "value": {
                "eventId": "bad-2",
                "eventName": "content.created",
                "timestamp": 1600070000000,
                "data": {"id": "pod-1", "contentType": "podcast"},
            },
        },
        "bad_value",
        None,
    ),
    (
        {
            "format": "partner.edmobile",
            "key": "x",
            "value": {
                "partner": "edmobile",
                "activityId": "bad-3",
                "learnerRef": "learner-02",
                "kind": "game",
                "itemRef": "g-1",
                "startedAt": "2020-09-14T10:00:00+02:00",
                "finishedAt": "2020-09-14T10:01:00+02:00",
            },
        },
        "bad_value",
        None,
    ),
    ({"format": "gooru.logapi", "key": "x", "text": '[{"eventId": "bad-4",'}, "bad_json", None),
    ({"format": "partner.unknown", "key": "x", "value": {"id": "bad-5"}}, "unknown_format", None),
    ({"key": "x", "value": {"hello": "bad-6"}}, "unknown_format", None),
]
RETAG: dict[str, Any] = {
    "format": "gooru.system",
    "key": "asmt-2-1",
    "value": {
        "eventId": "sys-retag",
        "eventName": "content.updated",
        "timestamp": 1600300000000,
        "actorId": "teacher-1",
        "data": {"id": "asmt-2-1", "contentType": "assessment", "competencies": ["MA.4.NF.3"]},
    },
}
GOOD_AND_BAD = [  # one array: the first element goes on, the second is dead-lettered
    {
        "eventId": "ok-7",
        "eventName": "resource.play",
        "startTime": 1600070000000,
        "endTime": 1600070042000,
        "user": {"gooruUId": "learner-99"},
        "context": {"type": "stop", "contentGooruId": "res-1-1-1", "resourceType": "resource"},
    },
    {
        "eventId": "bad-7",
        "eventName": "resource.play",
        "startTime": 1600070000000,
        "endTime": 1600070042000,
        "context": {"type": "stop", "contentGooruId": "res-1-1-1"},
    },
]


def scenario(plays: Path, late: Path, seed: int) -> tuple[list[tuple[str, Any]], int]:
    """Writes the JSON lines to replay: ``plays`` first, then ``late`` (the held-back metadata).
    Returns the valid messages sent, as the oracle takes them (a duplicate twice, the array's
    bad element left out), and how many lines ``plays`` has."""
    rng = random.Random(seed)
    lines: list[dict[str, Any]] = generate(seed=7)
    held = [r for r in lines if r["format"] == "gooru.system" and r["key"] in LATE]
    held.append(RETAG)  # the teacher retags an assessment the class took: the stats follow
    lines = [r for r in lines if r not in held]
    for start in range(0, len(lines), 30):  # out of order within sliding windows
        window = lines[start : start + 30]
        rng.shuffle(window)
        lines[start : start + 30] = window
    for r in rng.sample(lines, len(lines) // 20):  # duplicates, arriving later
        lines.insert(rng.randrange(lines.index(r), len(lines) + 1), r)
    mixed = len(lines) // 3
    lines.insert(mixed, {"format": "gooru.logapi", "key": "learner-99", "value": GOOD_AND_BAD})
    sent = [(r["format"], r["value"]) for r in lines + held]
    sent[mixed] = ("gooru.logapi", GOOD_AND_BAD[:1])
    for bad, _, _ in BAD:
        lines.insert(rng.randrange(len(lines)), bad)
    plays.write_text("".join(json.dumps(r) + "\n" for r in lines))
    late.write_text("".join(json.dumps(r) + "\n" for r in held))
    return sent, len(lines)


def waiting_for_late(want: Expected) -> int:
    """How many scores must be parked while the held-back content's metadata is missing."""
    scores = [*want.demux["assessment.score"], *want.rollup["collection.score"]]
    return len({(d.root, d.name) for d in scores if d.content in LATE})


def _usage(de: UsageEvent) -> De:
    return De(
        de.name,
        de.lineage.root_event_id,
        de.user_id,
        de.content_id,
        de.value,
        int(de.occurred_at.timestamp() * 1000),
        de.context,
        de.collection_id,
        de.collection_type,
        de.clamped,
    )


def _system(de: SystemEvent) -> SysDe:
    return SysDe(
        de.name,
        de.lineage.root_event_id,
        de.entity_id,
        de.content_type,
        de.parent_id,
        de.competencies,
        int(de.occurred_at.timestamp() * 1000),
    )


TABLES = {  # the oracle's name for a table -> (how many leading columns are the key, query)
    "catalog": (1, "SELECT content_id, content_type, parent_id, competencies, deleted "
                   "FROM content_catalog"),
    "usage": (6, "SELECT user_id, content_id, class_id, course_id, unit_id, lesson_id, "
                 "time_spent_ms, views, starts, latest_score, best_score, latest_reaction "
                 "FROM usage_metrics"),
    "competency": (2, "SELECT user_id, competency, attempts, latest_score, best_score "
                      "FROM competency_stats"),
}  # fmt: skip


def parked(settings: Settings) -> int:
    with db.connect(settings, autocommit=True) as conn:
        return int(str(conn.execute("SELECT count(*) FROM da_parked").fetchall()[0][0]))


def check_tables(settings: Settings, want: Expected) -> list[str]:
    """Differences between every learning table and the oracle (empty when equal)."""
    waiting = parked(settings)
    problems = [f"{waiting} still parked"] if waiting else []
    with db.connect(settings, autocommit=True) as conn:
        for name, (width, query) in TABLES.items():
            got = {
                (r[0] if width == 1 else tuple(r[:width])): tuple(r[width:])
                for r in conn.execute(query)
            }
            want_rows = getattr(want, name)
            bad = sorted(
                k
                for k in got.keys() | want_rows.keys()
                if _row(got.get(k)) != _row(want_rows.get(k))
            )
            if bad:
                problems.append(
                    f"{name}: {len(bad)} differ, e.g. {bad[0]}: "
                    f"table {got.get(bad[0])} oracle {want_rows.get(bad[0])}"
                )
    return problems


def _row(r: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    return None if r is None else tuple(round(v, 6) if isinstance(v, float) else v for v in r)


def test_learning_pipeline_matches_the_oracle_through_faults(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_LOG_LEVEL": "INFO"}
    prepare(env)
    plays, late = tmp_path / "plays.jsonl", tmp_path / "late.jsonl"
    sent, lines = scenario(plays, late, seed=3)
    want = expected(sent)
    assert len(want.usage) > 300 and len(want.competency) > 40 and want.rollup_sessions
    stages = Stages(env, tmp_path, COMMANDS)
    for stage in COMMANDS:
        stages.start(f"{stage}-1")
    script = [
        ("kill", "gep-1"),
        ("restart", "gep-1"),
        ("kill", "demux-1"),
        ("restart", "demux-1"),
        ("kill", "collection-rollup-1"),
        ("restart", "collection-rollup-1"),
        ("kill", "competency-stats-1"),
        ("restart", "competency-stats-1"),
    ]
    try:
        status, err = replay(stages, plays, 45, script)
        assert (status, f"sent {lines},") == (0, f"sent {lines},"), err
        # Every score of the content whose metadata is missing waits for it, none is lost ...
        waiting = waiting_for_late(want)
        assert waiting > 10
        stuck = wait_until_equal(lambda: [] if parked(settings) == waiting else ["parked"])
        assert stuck == [], (parked(settings), waiting, stages.tails())
        # ... and is released and counted when the metadata comes.
        status, err = replay(stages, late, 45, [])
        assert status == 0, err
        problems = wait_until_equal(lambda: check_tables(settings, want), timeout_s=60)
        assert problems == [], (problems, stages.tails())
        check_topics(settings, want)
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())


def check_topics(settings: Settings, want: Expected) -> None:
    topics, codec = Topics(settings.namespace), Codec()
    for bucket, des in want.demux.items():
        got = read_topic(
            settings, topics.sink_bucket("demux", bucket), expect=des.total(), linger_s=0.5
        )
        decoded = [UsageEvent.decode(codec, m.value()) for m in got]
        assert Counter(_usage(d) for d in decoded) == des, bucket
        assert {(d.lineage.stages, d.lineage.hops) for d in decoded} == {(("gep", "demux"), 1)}
    for bucket, sys_des in want.system.items():
        got = read_topic(
            settings, topics.sink_bucket("demux", bucket), expect=sys_des.total(), linger_s=0.5
        )
        assert Counter(_system(SystemEvent.decode(codec, m.value())) for m in got) == sys_des
    for bucket, up in want.rollup.items():
        got = read_topic(settings, topics.sink_bucket("dep", bucket), expect=len(up), linger_s=0.5)
        # The relay is at least once (downstream dedupes by identity): a repeat is the same bytes.
        assert len({m.value() for m in got}) == len({_identity(m) for m in got})
        decoded = [UsageEvent.decode(codec, m.value()) for m in got]
        assert {d.lineage.stages[-1] for d in decoded} == {"dep.collection-rollup"}
        if bucket != "collection.score":
            assert {_usage(d) for d in decoded} == up, bucket
            continue
        # the running mean of a session depends on arrival order: values checked per session
        assert {replace(_usage(d), value=-1, at_ms=0) for d in decoded} == up
        sessions: dict[tuple[Any, ...], list[UsageEvent]] = {}
        for d in {(d.lineage.root_event_id): d for d in decoded}.values():
            key = (d.user_id, d.content_id, d.context, d.session_id)
            sessions.setdefault(key, []).append(d)
        assert len(sessions) == len(want.rollup_sessions)
        for key, ds in sessions.items():
            n, mean = want.rollup_sessions[key]
            assert sorted(d.basis for d in ds) == list(range(1, n + 1)), key
            assert round(max(ds, key=lambda d: d.basis).value, 6) == round(mean, 6), key
    dead = read_topic(settings, topics.dead_letter("gep"), expect=len(BAD) + 1, linger_s=1)
    reasons = Counter(header(m.headers(), H_REASON) for m in dead)
    assert reasons == Counter([r for _, r, _ in BAD] + ["missing_field"])
    assert [header(m.headers(), "da-index") for m in dead if b"bad-7" in m.value()] == ["1"]


def _identity(m: Any) -> tuple[str, str]:
    return UsageEvent.decode(Codec(), m.value()).identity
