"""DEP ``ous-pipeline-driver``, an example actor of the OUS workflow, driven only by broadcasts.

On ``pipeline.process.<Executive>`` it does what a pipeline driver at that executive does: sets
the OUS Processing, runs the pipeline (simulated: a run time and an outcome drawn from a hash
of the visit, so a replay draws the same), then sets ProcessingProblem or ReadyForReview. Both
commands go through the ingest topic, in that order, with the run's end as the second one's time.
Once per request (``ous_driver_runs``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from common.codec import Codec
from common.events import SystemEvent
from common.outbox import Outbox, OutboxMessage
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.topics import Topics
from common.workflow import Selecting, command_message
from dep.spec import DepSpec

NAME = "ous-pipeline-driver"
SELECTORS = ("pipeline.process.*",)
PROBLEM_PER_MILLE = 250  # a quarter of the runs end in ProcessingProblem


def simulated_run(ous_uid: str, visit: str) -> tuple[int, str]:
    """Seconds the run takes and the state it ends in, drawn from the visit."""
    draw = zlib.crc32(f"run|{ous_uid}|{visit}".encode())
    seconds = 60 + draw % 3600
    problem = (draw >> 12) % 1000 < PROBLEM_PER_MILLE
    return seconds, "ProcessingProblem" if problem else "ReadyForReview"


class PipelineDriver:
    def __init__(self, codec: Codec, topics: Topics) -> None:
        self.codec = codec
        self.topics = topics
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> SystemEvent:
        return SystemEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[SystemEvent], cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO ous_driver_runs (request_id, ous_uid, executive) SELECT * FROM "
            "unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING "
            "RETURNING request_id",
            (
                [e.event_id for e in events],
                [e.entity_id for e in events],
                [e.attributes.get("executive", "") for e in events],
            ),
        )
        new = {str(r) for (r,) in cur.fetchall()}
        out: list[OutboxMessage] = []
        for e in events:
            if e.event_id not in new:
                continue
            new.discard(e.event_id)
            visit = e.attributes.get("visit", e.event_id)
            hops = int(e.attributes.get("hops", "0") or 0) + 1
            seconds, outcome = simulated_run(e.entity_id, visit)
            out += [
                command_message(
                    self.topics,
                    f"drive:{visit}:start",
                    e.entity_id,
                    "set-state",
                    "Processing",
                    e.occurred_at,
                    hops,
                ),
                command_message(
                    self.topics,
                    f"drive:{visit}:end",
                    e.entity_id,
                    "set-state",
                    outcome,
                    e.occurred_at + timedelta(seconds=seconds),
                    hops,
                ),
            ]
        self.outbox.add(cur, out)


def build(settings: Settings, codec: Codec) -> Selecting[SystemEvent]:
    return Selecting(PipelineDriver(codec, Topics(settings.namespace)), SPEC.selectors)


SPEC = DepSpec(
    name=NAME,
    description="Example OUS actor: runs the pipeline an executive was asked for (simulated)",
    inputs=(("dep", "ous"),),
    tables=("ous_driver_runs",),
    migrations=Path(__file__).parent / "migrations" / "ous_pipeline_driver",
    input_schemas=("de/system",),
    build=build,
    outbox=True,
    selectors=SELECTORS,
)
