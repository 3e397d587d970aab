"""How long a chaos run waits for its tables after the stream: as long as the pipeline moves.

A fixed deadline judges a loaded machine's slow catch-up as loss (a run at a load average of 44
on 2 cores was still applying, correctly, when 300 s ran out). So the wait is proportional to
progress: it goes on while the stages' committed offsets or the differences from the oracle
change, and ends when the tables match, or when nothing has moved for ``still_s`` — then the
run fails saying that the pipeline stood still, with how far it got.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

from common import stages
from common.lag import kafka_lag
from common.settings import Settings
from common.topics import Topics

log = logging.getLogger("chaos")


def committed(settings: Settings, names: list[str]) -> int:
    """The sum of the committed offsets of the named stages' groups over all their inputs."""
    topics, total = Topics(settings.namespace), 0
    for name in names:
        stage = stages.get(name)
        group = stage.group(settings)
        if group is not None:
            with contextlib.suppress(KafkaException):  # a look that failed: the next one will do
                lags = kafka_lag(settings, group, stage.input_topics(topics))
                total += sum(p.committed or 0 for p in lags)
    return total


def wait(
    check: Callable[[], list[str]],
    progress: Callable[[], int],
    still_s: float,
    tick: Callable[[], None],
    every_s: float = 2.0,
) -> list[str]:
    """The differences left (empty: the tables match). ``check`` lists the differences,
    ``progress`` is a figure that grows while the pipeline works, ``tick`` runs between looks
    (the supervisor)."""
    started = moved = time.monotonic()
    last: tuple[list[str], int] | None = None
    while True:
        problems = check()
        if not problems:
            log.info("tables equal to the oracle after %.0f s", time.monotonic() - started)
            return []
        now = (problems, progress())
        if now != last:
            log.info("still differ (committed %d): %s", now[1], "; ".join(problems)[:400])
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > still_s:
            return [
                *problems,
                f"nothing moved for {still_s:g} s (committed offsets and differences unchanged; "
                f"{time.monotonic() - started:.0f} s after the stream)",
            ]
        tick()
        time.sleep(every_s)
