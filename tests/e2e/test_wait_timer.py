"""The wall-clock wait timer with real processes: GEP, demux and ``fulfillment-state`` run, two
test takers start waiting, one is launched in time, then nothing more arrives. The one left
waiting gets exactly one ``fulfillment.wait_exceeded`` once ``DA_WAIT_SLA_S`` has passed, across
SIGKILLs and restarts of the DEP (before the alert is due and the moment it fires); the one that
left WAITING in time gets none."""

from __future__ import annotations

import csv
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.sample.fulfillments import COLUMNS
from cli.schemas import codec_for
from common import db
from common.events import FulfillmentEvent
from common.settings import Settings
from common.topics import Topics
from dep.wait_timer import WAIT_EXCEEDED
from tests.e2e.pipeline import Stages, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic

SLA_S = 20  # long enough to see both test takers stored and kill the DEP before it is due
COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "fulfillment-state": ["dep", "run", "fulfillment-state"],
}


def rows(t0: datetime) -> list[dict[str, str]]:
    def row(eid: str, etype: str, fid: str, at: datetime) -> dict[str, str]:
        stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
        return {"id": eid, "type": etype, "fulfillment_id": fid, "created_at": stamp}

    return [
        row("9100001", "Event::Welcome", "waits", t0 - timedelta(seconds=2)),
        row("9100002", "Event::LmiConnected", "waits", t0),
        row("9100003", "Event::LmiConnected", "launched", t0),
        row("9100004", "Event::LaunchStart", "launched", t0 + timedelta(seconds=3)),
    ]


def states(settings: Settings) -> dict[str, str]:
    with db.connect(settings, autocommit=True) as conn:
        got = conn.execute("SELECT fulfillment_id, state FROM current_fulfillments").fetchall()
    return {str(f): str(s) for f, s in got}


def alerted(settings: Settings) -> list[Any]:
    with db.connect(settings, autocommit=True) as conn:
        return conn.execute("SELECT fulfillment_id FROM fulfillment_wait_alerts").fetchall()


def test_a_wait_past_the_limit_is_alerted_once_across_restarts(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_LOG_LEVEL": "INFO", "DA_WAIT_SLA_S": str(SLA_S)}
    prepare(env)
    stages = Stages(env, tmp_path, COMMANDS)
    for stage in COMMANDS:
        stages.start(f"{stage}-1")
    try:
        file = tmp_path / "waits.csv"
        with file.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows(datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=4)))
        assert replay(stages, file, 50, [])[0] == 0
        want = {"waits": "WAITING", "launched": "LAUNCHING"}
        seen = wait_until_equal(lambda: [] if states(settings) == want else ["not yet"], 90)
        assert seen == [], (states(settings), stages.tails())
        # Killed (most likely before the alert is due) and restarted.
        stages.kill("fulfillment-state-1")
        stages.start("fulfillment-state-1")
        # ... and killed again the moment the alert is committed (its relay to Kafka may or may
        # not have happened): still once.
        deadline = time.monotonic() + 180
        while not alerted(settings) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alerted(settings) == [("waits",)], stages.tails()
        stages.kill("fulfillment-state-1")
        stages.start("fulfillment-state-1")
        topic = Topics(settings.namespace).sink("dep", WAIT_EXCEEDED)
        # Lingers long enough for the restarted DEP to tick many times over.
        got = read_topic(settings, topic, expect=1, linger_s=SLA_S / 2, timeout_s=120)
        with closing(codec_for(settings)) as codec:
            alerts = [FulfillmentEvent.decode(codec, m.value()) for m in got]
        assert [(a.name, a.fulfillment_id, a.event_id) for a in alerts] == [
            (WAIT_EXCEEDED, "waits", "9100002")
        ], stages.tails()
        assert [m.key() for m in got] == [b"waits"]
        assert states(settings) == want
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())
