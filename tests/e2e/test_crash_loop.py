"""A message that kills its stage every time (as a segfault or the OOM killer would) is
quarantined after ``DA_MAX_CRASHES`` deaths in a row, and the stage goes on: GEP as a real
process, restarted by a supervisor loop as an orchestrator would, on real Kafka and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common.deadletter import H_DETAIL, H_OFFSET, H_REASON, header
from common.guard import CRASH_EXIT
from common.kafka import make_producer
from common.settings import Settings
from common.topics import Topics
from tests.e2e.nasty import HEADERS, good, raw
from tests.e2e.pipeline import Stages, prepare
from tests.kafka_read import read_topic

MARKER = "CRASH-ME-7f3a"


def test_a_message_that_kills_its_stage_is_quarantined(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_TEST_CRASH_MARKER": MARKER, "DA_PARTITIONS": "1"}
    prepare(env)
    topics = Topics(settings.namespace)
    producer = make_producer(settings)
    values = [good(i) for i in range(30)]
    values.insert(17, raw("doomed", {"note": MARKER}))
    for v in values:
        producer.produce(topics.ingest, v, b"k", headers=HEADERS)
    assert producer.flush(10) == 0

    stages = Stages(env, tmp_path, {"gep": ["gep", "run"]})
    stages.start("gep-1")
    crashes: list[int] = []
    deadline = time.monotonic() + 240
    try:
        # The orchestrator's part: restart the stage whenever it dies, until it has let the
        # doomed message go (or far more deaths than the guard allows).
        letters: list[Any] = []
        while time.monotonic() < deadline and len(crashes) <= 8:
            code = stages.procs["gep-1"].poll()
            if code is not None:
                crashes.append(code)
                stages.procs.pop("gep-1")
                stages.start("gep-1")
            letters = read_topic(
                settings, topics.dead_letter("gep"), expect=1, linger_s=0, timeout_s=2
            )
            if letters:
                break
        canonical = read_topic(settings, topics.canonical, expect=30, timeout_s=60)
        letters = read_topic(settings, topics.dead_letter("gep"), expect=1)
    finally:
        exits = stages.stop_all()
    assert crashes and set(crashes) == {CRASH_EXIT}, (crashes, stages.tails())
    assert 3 <= len(crashes) <= 4, crashes  # N deaths on the message (+1 for its whole batch)
    assert len(canonical) == 30, stages.tails()
    assert len(letters) == 1
    (letter,) = letters
    assert header(letter.headers(), H_REASON) == "quarantined"
    assert header(letter.headers(), H_OFFSET) == "17"
    assert "died 3 times" in (header(letter.headers(), H_DETAIL) or "")
    assert letter.value() == values[17]
    assert exits == {"gep-1": 0}, stages.tails()
