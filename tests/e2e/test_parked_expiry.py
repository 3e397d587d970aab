"""Parked scores expire on time on an idle pipeline: GEP, demux and ``competency-stats`` as real
processes, scores for content whose metadata never comes, and then nothing more. The run loop's
tick (``common.ticks``) dead-letters each one ``parked_too_long`` after ``DA_PARK_TIMEOUT_S``
with no new input, and exactly once across SIGKILLs and restarts of the DEP, before they are due
and while they expire."""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from cli.schemas import codec_for
from common.deadletter import H_REASON, header
from common.events import UsageEvent
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import Stages, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic
from tests.learning_check import parked

TIMEOUT_S = 15  # long enough to see the second wave parked and kill the DEP before it expires
COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "competency-stats": ["dep", "run", "competency-stats"],
}
T0 = 1_600_000_000_000


def scores(wave: str, n: int) -> list[dict[str, Any]]:
    """``n`` finished assessments (log writer), each for content nobody ever describes."""
    return [
        {
            "format": "gooru.logwriter",
            "key": f"learner-{i}",
            "value": {
                "eventId": f"{wave}-{i}",
                "eventName": "collection.performance",
                "userId": f"learner-{i}",
                "activityTime": T0 + i,
                "collectionId": f"never-{wave}-{i % 4}",
                "collectionType": "assessment",
                "context": {"classId": "class-1", "sessionId": f"{wave}-s{i}"},
                "result": {"timeSpent": 60_000, "score": 50 + i},
            },
        }
        for i in range(n)
    ]


def dead_letters(settings: Settings, expect: int) -> Counter[tuple[str, str]]:
    topic = Topics(settings.namespace).dead_letter("dep.competency-stats")
    got = read_topic(settings, topic, expect=expect, linger_s=2, timeout_s=30)
    assert {header(m.headers(), H_REASON) for m in got} <= {"parked_too_long"}
    # Read in the stages' framing: with a schema registry up, they write its wire format.
    with closing(codec_for(settings)) as codec:
        return Counter(UsageEvent.decode(codec, m.value()).identity for m in got)


def test_parked_scores_expire_on_an_idle_pipeline_once_across_a_restart(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_LOG_LEVEL": "INFO", "DA_PARK_TIMEOUT_S": str(TIMEOUT_S)}
    prepare(env)
    first, second = scores("a", 12), scores("b", 9)
    want = Counter((r["value"]["eventId"], "usage.assessment.score") for r in [*first, *second])
    stages = Stages(env, tmp_path, COMMANDS)
    for stage in COMMANDS:
        stages.start(f"{stage}-1")
    try:
        # Wave 1: parked, then nothing arrives; they expire all the same.
        wave = tmp_path / "a.jsonl"
        wave.write_text("".join(json.dumps(r) + "\n" for r in first))
        assert replay(stages, wave, 50, [])[0] == 0
        seen = wait_until_equal(lambda: [] if parked(settings) == 12 else ["not parked"], 60)
        assert seen == [], (parked(settings), stages.tails())
        gone = wait_until_equal(lambda: [] if parked(settings) == 0 else ["parked"], 180)
        assert gone == [] and dead_letters(settings, 12).total() == 12, stages.tails()
        # Wave 2: parked; the DEP is killed before they are due and restarted; still once each.
        wave = tmp_path / "b.jsonl"
        wave.write_text("".join(json.dumps(r) + "\n" for r in second))
        assert replay(stages, wave, 50, [])[0] == 0
        seen = wait_until_equal(lambda: [] if parked(settings) == 9 else ["not parked"], 60)
        assert seen == [], (parked(settings), stages.tails())
        stages.kill("competency-stats-1")
        stages.start("competency-stats-1")
        # ... and killed again the moment they start expiring (between the expiry's commit, the
        # relay's Kafka transaction and its delete): still once each.
        deadline = time.monotonic() + 180
        while parked(settings) == 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        stages.kill("competency-stats-1")
        stages.start("competency-stats-1")
        gone = wait_until_equal(lambda: [] if parked(settings) == 0 else ["parked"], 180)
        assert gone == [], stages.tails()
        assert dead_letters(settings, 21) == want
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())
