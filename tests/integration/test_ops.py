"""Operator tools on real services: ``da dlq list | show | replay`` and ``da replay``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from cli.sample.fulfillments import generate
from cli.stages import all_topics
from common import db
from common.codec import Codec
from common.kafka import ensure_topics, make_producer
from common.launch import run_store, run_transform
from common.runloop import Stopper
from common.settings import Settings
from common.topics import Topics
from demux.stage import Demux
from dep import registry
from gep.stage import Gep
from tests.kafka_read import read_topic
from tests.oracle import expected_tables

REPO = Path(__file__).resolve().parents[2]
CODEC = Codec()


def da(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def _rows(seed: int, count: int) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=seed, count=count)]


def _ingest(settings: Settings, rows: list[dict[str, str]]) -> None:
    ensure_topics(settings, all_topics(settings))
    producer = make_producer(settings)
    topic = Topics(settings.namespace).ingest
    for r in rows:
        producer.produce(
            topic,
            json.dumps(r).encode(),
            r["fulfillment_id"].encode(),
            headers=[("da-format", b"proctoring.csv")],
        )
    assert producer.flush(10) == 0


def _pipeline(settings: Settings, n: int, valid: int | None = None) -> None:
    """GEP, demux and the DEP in turn: GEP until it handled ``n`` raw events, the others until
    they handled the ``valid`` ones that passed it (or each went idle)."""
    valid = n if valid is None else valid
    topics = Topics(settings.namespace)
    run_transform(
        settings,
        "gep",
        Gep(topics, CODEC),
        [topics.ingest],
        Stopper(),
        max_messages=n,
        idle_stop_s=15,
    )
    run_transform(
        settings,
        "demux",
        Demux(topics, CODEC),
        [topics.canonical],
        Stopper(),
        max_messages=valid,
        idle_stop_s=15,
    )
    db.migrate(settings, registry.all_migrations())
    spec = registry.get("fulfillment-state")
    run_store(
        settings,
        "dep.fulfillment-state",
        spec.build(settings, CODEC),
        spec.topics(topics),
        Stopper(),
        max_messages=valid,
        idle_stop_s=15,
    )


def _tables(settings: Settings) -> tuple[int, dict[str, str], int]:
    with db.connect(settings) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        states = {
            str(f): str(s)
            for f, s in conn.execute("SELECT fulfillment_id, state FROM current_fulfillments")
        }
        history = conn.execute("SELECT count(*) FROM fulfillments_history").fetchone()
    return int(str(events[0] if events else 0)), states, int(str(history[0] if history else 0))


def test_dead_letters_are_listed_shown_and_replayed(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    good = _rows(21, 5)
    bad = [
        {**good[0], "id": "x1", "created_at": "yesterday"},
        {**good[0], "id": "x2", "created_at": "soon"},
        {**good[0], "id": "x3", "type": ""},
    ]
    _ingest(settings, good + bad)
    _pipeline(settings, len(good) + len(bad), len(good))

    listed = json.loads(da(settings_env, "dlq", "list", "-o", "json").stdout)["stages"]
    gep = next(s for s in listed if s["stage"] == "gep")
    assert gep["count"] == 3 and gep["reasons"] == {"bad_timestamp": 2, "missing_field": 1}
    table = da(settings_env, "dlq", "list").stdout
    assert "bad_timestamp 2, missing_field 1" in table
    shown = da(settings_env, "dlq", "show", "gep", "--reason", "bad_timestamp", "-o", "json")
    letters = json.loads(shown.stdout)["letters"]
    assert [(x["reason"], x["field"]) for x in letters] == [("bad_timestamp", "created_at")] * 2
    assert sorted(json.loads(x["value"])["id"] for x in letters) == ["x1", "x2"]

    dry = da(settings_env, "dlq", "replay", "gep", "--reason", "bad_timestamp", "--dry-run")
    assert "would replay 2, skipped 1" in dry.stdout
    ingest = Topics(settings.namespace).ingest
    before = len(read_topic(settings, ingest, expect=len(good) + len(bad), linger_s=1))
    done = da(settings_env, "dlq", "replay", "gep", "--reason", "bad_timestamp", "--rate", "0")
    assert "replayed 2, skipped 1" in done.stdout
    after = read_topic(settings, ingest, expect=before + 2, linger_s=1)
    replayed = [m for m in after if any(k == "da-replayed-from" for k, _ in m.headers() or [])]
    assert sorted(json.loads(m.value())["id"] for m in replayed) == ["x1", "x2"]
    # The original bytes and format header went back unchanged.
    assert all(("da-format", b"proctoring.csv") in (m.headers() or []) for m in replayed)


def test_replay_rebuilds_tables_and_refuses_while_the_dep_runs(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    rows = _rows(22, 40)
    _ingest(settings, rows)
    _pipeline(settings, len(rows))
    want = expected_tables(rows)
    assert _tables(settings)[0] == len(want.event_ids)
    with db.connect(settings) as conn:  # a bug, say, left wrong state behind
        conn.execute("UPDATE current_fulfillments SET state = 'BROKEN'")
        conn.execute("DELETE FROM fulfillments_history")

    dep = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dep", "run", "fulfillment-state"],
        env=settings_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        refused = da(settings_env, "replay", "fulfillment-state", "--rebuild", "--yes", check=False)
        while refused.returncode == 0 and time.monotonic() < deadline:  # not joined yet
            refused = da(
                settings_env, "replay", "fulfillment-state", "--rebuild", "--yes", check=False
            )
        assert refused.returncode == 2 and "running instance" in refused.stderr
    finally:
        dep.terminate()
        assert dep.wait(timeout=60) == 0

    assert "rebuild" in da(settings_env, "replay", "fulfillment-state", "--rebuild", "--yes").stdout
    assert _tables(settings) == (0, {}, 0)
    _pipeline_dep_only(settings, len(rows))
    events, states, history = _tables(settings)
    assert events == len(want.event_ids) and history == len(want.history)
    assert states == {f: s for f, (s, _) in want.current.items()}


def _pipeline_dep_only(settings: Settings, n: int) -> None:
    spec = registry.get("fulfillment-state")
    run_store(
        settings,
        "dep.fulfillment-state",
        spec.build(settings, CODEC),
        spec.topics(Topics(settings.namespace)),
        Stopper(),
        max_messages=n,
        idle_stop_s=15,
    )


def test_replay_from_a_time_moves_the_stored_offsets(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    rows = _rows(23, 10)
    _ingest(settings, rows)
    _pipeline(settings, len(rows))
    da(settings_env, "replay", "fulfillment-state", "--from", "2000-01-01T00:00:00+00:00", "--yes")
    with db.connect(settings) as conn:
        offsets = [int(str(r[0])) for r in conn.execute("SELECT next_offset FROM da_offsets")]
    assert offsets and set(offsets) == {0}  # everything is re-read; the tables are kept
    assert _tables(settings)[0] == len(rows)
