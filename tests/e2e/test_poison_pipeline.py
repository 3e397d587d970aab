"""Nasty messages of every class that used to stall or crash a stage, among good events, through
GEP, demux and the DEPs as real processes on real Kafka and PostgreSQL: every good event is
stored, every nasty one dead-lettered once with its reason, no stage exits, and no batch is
retried over a message that can never pass."""

from __future__ import annotations

from pathlib import Path

from common.settings import Settings
from tests.e2e import poison_run


def test_nasty_messages_among_good_ones(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    limit = 200_000  # the stages' record limit, smaller than the broker's: both roads are taken
    settings = Settings(**{**settings.__dict__, "max_message_bytes": limit})
    env = {**settings_env, "DA_MAX_MESSAGE_BYTES": str(limit)}
    figures = poison_run.run(settings, env, tmp_path, rounds=1, per_round=60)
    assert figures.problems() == [], figures
    assert figures.good_stored == figures.good_sent == 60
    assert figures.dead_lettered == figures.tried and sum(figures.tried.values()) == 10
