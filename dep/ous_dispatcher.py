"""DEP ``ous-dispatcher``, an example actor of the OUS workflow, driven only by broadcasts.

When an OUS is ReadyForProcessing and has a recipe (whichever of the two broadcasts comes
last), it picks an executive for that visit, sets it on the OUS (``set-exec``, a command through
the ingest topic) and requests processing: a DE ``ous.pipeline.process`` with selector
``pipeline.process.<Executive>`` on the broadcast topic, for that executive's pipeline driver.
Once per visit of ReadyForProcessing (``ous_dispatches``): a repeated broadcast changes nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from common.codec import Codec
from common.events import SystemEvent
from common.names import dep_stage
from common.outbox import Outbox, OutboxMessage
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.topics import Topics
from common.workflow import SELECTOR_HEADER, Selecting, command_message
from dep.spec import DepSpec

NAME = "ous-dispatcher"
STAGE = dep_stage(NAME)
SELECTORS = ("recipe.change.*", "state.change.ReadyForProcessing")
EXECUTIVES = ("EU", "EA", "NA")
READY = "ReadyForProcessing"


def executive(ous_uid: str, visit: str) -> str:
    """The executive for one visit: stable, and spread evenly over the executives."""
    return EXECUTIVES[zlib.crc32(f"{ous_uid}|{visit}".encode()) % len(EXECUTIVES)]


class Dispatcher:
    def __init__(self, codec: Codec, topics: Topics, max_hops: int) -> None:
        self.codec = codec
        self.topics = topics
        self.max_hops = max_hops
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> SystemEvent:
        return SystemEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[SystemEvent], cur: Cursor) -> None:
        ready = [
            e for e in events if e.attributes.get("state") == READY and e.attributes.get("substate")
        ]
        if not ready:
            return
        cur.execute(
            "INSERT INTO ous_dispatches (ous_uid, visit, executive) SELECT * FROM "
            "unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING "
            "RETURNING ous_uid, visit",
            (
                [e.entity_id for e in ready],
                [e.attributes.get("visit", "") for e in ready],
                [executive(e.entity_id, e.attributes.get("visit", "")) for e in ready],
            ),
        )
        new = {(str(u), str(v)) for u, v in cur.fetchall()}
        out: list[OutboxMessage] = []
        for e in ready:
            visit = e.attributes.get("visit", "")
            if (e.entity_id, visit) not in new:
                continue
            new.discard((e.entity_id, visit))  # two broadcasts of one visit in this batch
            out += self._dispatch(e, visit)
        self.outbox.add(cur, out)

    def _dispatch(self, e: SystemEvent, visit: str) -> list[OutboxMessage]:
        exe = executive(e.entity_id, visit)
        hops = int(e.attributes.get("hops", "0") or 0) + 1
        set_exec = command_message(
            self.topics, f"dispatch:{visit}", e.entity_id, "set-exec", exe, e.occurred_at, hops
        )
        selector = f"pipeline.process.{exe}"
        request = SystemEvent(
            name="ous.pipeline.process",
            event_id=f"dispatch:{visit}:process",
            entity_id=e.entity_id,
            occurred_at=e.occurred_at,
            lineage=e.lineage.next_hop(STAGE, self.max_hops),
            attributes={
                "selector": selector,
                "executive": exe,
                "recipe": e.attributes.get("substate", ""),
                "visit": visit,
                "hops": str(hops),
            },
        )
        return [
            set_exec,
            OutboxMessage(
                self.topics.sink_bucket("dep", "ous"),
                e.entity_id.encode(),
                request.encode(self.codec),
                (("da-de-name", request.name.encode()), (SELECTOR_HEADER, selector.encode())),
            ),
        ]


def build(settings: Settings, codec: Codec) -> Selecting[SystemEvent]:
    topics = Topics(settings.namespace)
    return Selecting(Dispatcher(codec, topics, settings.max_hops), SPEC.selectors)


SPEC = DepSpec(
    name=NAME,
    description="Example OUS actor: assigns an executive and requests processing",
    inputs=(("dep", "ous"),),
    tables=("ous_dispatches",),
    migrations=Path(__file__).parent / "migrations" / "ous_dispatcher",
    input_schemas=("de/system",),
    build=build,
    emits=(("dep", "ous"),),
    emits_schema="de/system",
    outbox=True,
    outbox_exactly_once=True,
    selectors=SELECTORS,
)
