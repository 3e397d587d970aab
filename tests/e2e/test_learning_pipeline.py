"""The learning pipeline end to end: GEP, demux and every learning DEP as real processes on real
Kafka and PostgreSQL, fed ``da sample learning``'s class (both Gooru formats, core-system
content, EdMobile) with duplicates, events out of order, the metadata of some content held back
until after every play of it, and bad messages, while stages are killed (SIGKILL) and restarted.
Every DE topic and every learning table must equal ``tests.learning_oracle``'s computation."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from cli.sample.learning import generate
from common.deadletter import H_REASON, header
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import Stages, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic
from tests.learning_check import check_tables, check_topics, held_back, parked, waiting_for_late
from tests.learning_oracle import expected

DEPS = ("content-catalog", "usage-metrics", "collection-rollup", "competency-stats")
COMMANDS = {"gep": ["gep", "run"], "demux": ["demux", "run"]} | {d: ["dep", "run", d] for d in DEPS}
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
    lines, held = held_back(lines)
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
        assert check_topics(settings, want).problems == []
        check_gep_dead_letters(settings)
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())


def check_gep_dead_letters(settings: Settings) -> None:
    dead = read_topic(
        settings, Topics(settings.namespace).dead_letter("gep"), expect=len(BAD) + 1, linger_s=1
    )
    reasons = Counter(header(m.headers(), H_REASON) for m in dead)
    assert reasons == Counter([r for _, r, _ in BAD] + ["missing_field"])
    assert [header(m.headers(), "da-index") for m in dead if b"bad-7" in m.value()] == ["1"]
