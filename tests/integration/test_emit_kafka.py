"""``da emit`` as a real process against a real broker: every good row arrives once, in order."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Message

from common.kafka import ensure_topics, make_consumer
from common.settings import Settings
from common.topics import Topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "fulfillments.csv"
HEADER = "id,type,fulfillment_id,created_at,created_by_id,ip_address\n"


def _emit(path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "emit", str(path), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of each message, until ``expected`` arrive or time runs out."""
    consumer = make_consumer(settings, f"test-emit-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            got += [_parts(m) for m in consumer.consume(1000, timeout=1.0)]
            if len(got) >= expected:
                # a little longer than needed, so a duplicate would show up
                got += [_parts(m) for m in consumer.consume(1000, timeout=2.0)]
                break
    finally:
        consumer.close()
    return got


def _parts(message: Message) -> tuple[bytes, bytes, int]:
    assert message.error() is None, message.error()
    assert message.headers() == [("da-format", b"proctoring.csv")]
    key, value, partition = message.key(), message.value(), message.partition()
    assert key is not None and value is not None and partition is not None
    return key, value, partition


def test_sample_file_arrives_whole_keyed_and_in_order(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    topic = Topics(settings.namespace).ingest
    ensure_topics(settings, [topic])
    with SAMPLE.open(newline="") as f:
        rows = list(csv.DictReader(f))

    result = _emit(SAMPLE, settings_env, "-v")

    assert result.returncode == 0, result.stderr
    assert f"sent {len(rows)}, bad rows 0, failed deliveries 0" in result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        f"[x] Sent {r['type']} for fulfillment {r['fulfillment_id']}" for r in rows
    )
    got = _consume_all(settings, topic, len(rows))
    assert sorted(json.loads(v)["id"] for _, v, _ in got) == sorted(r["id"] for r in rows)
    partitions: dict[bytes, set[int]] = {}
    per_fulfillment: dict[bytes, list[dict[str, str]]] = {}
    for key, value, partition in got:
        event = json.loads(value)
        assert key == event["fulfillment_id"].encode()
        partitions.setdefault(key, set()).add(partition)
        per_fulfillment.setdefault(key, []).append(event)
    assert all(len(p) == 1 for p in partitions.values())
    by_id = {r["id"]: r for r in rows}
    for events in per_fulfillment.values():
        # values exactly as in the file, and one fulfillment's events in file order
        assert events == [by_id[e["id"]] for e in events]
        assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_is_sent(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    topic = Topics(settings.namespace).ingest
    ensure_topics(settings, [topic])
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + "1,Event::Welcome,15905113,2020-01-18 08:00:01.5,77,10.0.0.1\n"
        + "2,Event::LmiDownload,15905113\n"
        + "3,Event::Bogus,15905114,not a time,77,\n"
        + "4,Event::LaunchStart,15905113,2020-01-18 08:09:01,77,10.0.0.1,extra\n"
    )

    result = _emit(path, settings_env, "-v")

    assert result.returncode == 1
    assert "line 3: expected 6 fields, got 3" in result.stderr
    assert "line 5: expected 6 fields, got 7" in result.stderr
    assert "sent 2, bad rows 2, failed deliveries 0" in result.stderr
    # one line per delivery; deliveries on different partitions come in any order
    assert sorted(result.stdout.splitlines()) == [
        "[x] Sent Event::Bogus for fulfillment 15905114",
        "[x] Sent Event::Welcome for fulfillment 15905113",
    ]
    got = _consume_all(settings, topic, 2)
    assert sorted((k, json.loads(v)["created_at"]) for k, v, _ in got) == [
        (b"15905113", "2020-01-18 08:00:01.5"),
        (b"15905114", "not a time"),
    ]


def test_missing_required_column_sends_nothing(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("id,type,fulfillment_id,created_at\n1,Event::Welcome,15905113,x\n")

    result = _emit(path, settings_env)

    assert result.returncode == 2  # the input is at fault, not the work
    assert result.stderr.strip().splitlines() == [
        f"da emit: {path}: header lacks required column(s): created_by_id"
    ]


def test_missing_topic_is_refused_unless_told_otherwise(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER)

    result = _emit(path, settings_env)

    assert result.returncode == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("how", ["pipe", "redirect"])
def test_dash_reads_standard_input(
    settings: Settings, settings_env: dict[str, str], how: str
) -> None:
    topic = Topics(settings.namespace).ingest
    ensure_topics(settings, [topic])
    with SAMPLE.open(newline="") as f:
        rows = list(csv.DictReader(f))
    command = [sys.executable, "-m", "cli.main", "emit", "-"]
    with SAMPLE.open("rb") as source:
        if how == "pipe":
            result = subprocess.run(
                command, input=source.read(), env=settings_env, cwd=REPO, capture_output=True
            )
        else:  # da emit - < file: the size is known, so the progress has an ETA
            result = subprocess.run(
                command, stdin=source, env=settings_env, cwd=REPO, capture_output=True
            )
    assert result.returncode == 0, result.stderr
    assert f"sent {len(rows)}, bad rows 0".encode() in result.stderr
    got = _consume_all(settings, topic, len(rows))
    assert sorted(json.loads(v)["id"] for _, v, _ in got) == sorted(r["id"] for r in rows)
