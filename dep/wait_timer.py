"""The wall-clock timer of ``fulfillment-state`` (``dep.fulfillment_state``): a wait past
``DA_WAIT_SLA_S`` becomes one ``fulfillment.wait_exceeded`` DE per fulfillment and state visit.

The wait runs from the event time the fulfillment entered WAITING to the wall-clock time its input
partition was last read to the end (``read_to``, ``common.ticks``), so a backlog (an initial load,
a DEP catching up) alerts nothing until the events in it are applied. The alert row
(``fulfillment_wait_alerts``, keyed by fulfillment and state) and the DE in the outbox commit in
the tick's transaction; the DEP relays its outbox exactly once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from common.codec import Codec
from common.events import FulfillmentEvent, Lineage
from common.names import DEMUX, GEP, dep_stage
from common.outbox import Outbox, OutboxMessage
from common.store import Cursor
from common.ticks import Owned, ReadTo

NAME = "fulfillment-state"
STAGE = dep_stage(NAME)
WAIT_EXCEEDED = "fulfillment.wait_exceeded"
WAITING = ("WAITING",)  # the states whose visits the timer watches

_DUE = """
INSERT INTO fulfillment_wait_alerts (fulfillment_id, state, entered_at, entered_event_id, sla_s)
SELECT c.fulfillment_id, c.state, c.state_start_time, c.state_event_id, %(sla)s
FROM current_fulfillments c
JOIN unnest(%(partitions)s::int[], %(read_to)s::timestamptz[]) AS r(p, read_to)
  ON c.input_partition = r.p
WHERE c.state = ANY(%(states)s)
  AND c.state_start_time < %(latest)s::timestamptz - make_interval(secs => %(sla)s)
  AND c.state_start_time + make_interval(secs => %(sla)s) < r.read_to
  AND NOT EXISTS (SELECT 1 FROM fulfillment_wait_alerts a
                  WHERE a.fulfillment_id = c.fulfillment_id AND a.state = c.state)
ON CONFLICT DO NOTHING
RETURNING fulfillment_id, state, entered_at, entered_event_id,
  (SELECT event_type FROM events WHERE event_id = entered_event_id)
"""


class WaitTimer:
    def __init__(
        self, codec: Codec, input_topic: str, alert_topic: str, sla_s: float, max_hops: int
    ) -> None:
        self.codec = codec
        self.input_topic = input_topic
        self.alert_topic = alert_topic
        self.sla_s = sla_s
        self.max_hops = max_hops
        self.outbox = Outbox(NAME)

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None:
        """``fulfillment.wait_exceeded`` for each wait past the limit on a partition read to
        its end since the limit passed, once (the alert row's key), into the outbox."""
        mine = {p: at for (topic, p), at in read_to.items() if topic == self.input_topic}
        if not mine:
            return
        cur.execute(
            _DUE,
            {
                "sla": self.sla_s,
                "partitions": list(mine),
                "read_to": list(mine.values()),
                "latest": max(mine.values()),
                "states": list(WAITING),
            },
        )
        out = []
        for fid, state, entered, entered_id, entered_type in cur.fetchall():
            entered_at = cast(datetime, entered)  # a timestamptz
            de = FulfillmentEvent(
                name=WAIT_EXCEEDED,
                event_id=str(entered_id),
                fulfillment_id=str(fid),
                event_type=str(entered_type or ""),
                occurred_at=entered_at + timedelta(seconds=self.sla_s),
                lineage=Lineage(str(entered_id), (GEP, DEMUX), 1).next_hop(STAGE, self.max_hops),
                attributes={
                    "state": str(state),
                    "entered_at": entered_at.isoformat(),
                    "sla_s": f"{self.sla_s:g}",
                    "detected_at": now.isoformat(),
                },
            )
            out.append(OutboxMessage(self.alert_topic, str(fid).encode(), de.encode(self.codec)))
        self.outbox.add(cur, out)
