"""The bare-client ceilings of DEP ``fulfillment-state``: a hand-written consumer on
confluent-kafka, fastavro and psycopg, offsets in PostgreSQL (one statement for every partition's
offset in ``da_offsets``, one database transaction per batch, resuming from the stored offsets).

- ``dep``: fastavro decode of the DE, COPY into a temporary table, one merge into ``events``.
- ``dep-tables``: the same, and the other two tables the DEP keeps, the way a hand-written
  consumer would: the new trigger events (those the merge returned), an advisory lock per
  fulfillment, its ``current_fulfillments`` row read, the moves applied in memory from the
  life-cycle's TOML (forward only, in event time, ids ordered as the DEP orders them), the
  states left COPYed into ``fulfillments_history`` and the rows upserted in one statement. It
  assumes events come in order: a trigger older than the last one applied is dropped, where
  the DEP recomputes the fulfillment from its stored events. It does less than the DEP, so it
  stays a ceiling.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from typing import Any

import msgspec
from fastavro import schemaless_reader

from bench.bare_loop import body, consume_into_db, schema
from bench.report import Figure
from common.events.fulfillment import FULFILLMENT_DE
from common.runloop import Message
from common.settings import Settings
from common.topics import Topics
from dep.fulfillment_state import DEFAULT_LIFECYCLE
from dep.lifecycle import order_key

KINDS = ("dep", "dep-tables")
Move = tuple[str, str, datetime]  # event_id, state it moves to, created_at
# state, state_start_time, state_event_id, last_event_at, last_event_id
Row = list[Any]

_UPSERT = """
INSERT INTO current_fulfillments (fulfillment_id, state, state_start_time, state_event_id,
    last_event_at, last_event_id, input_partition)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::timestamptz[],
                     %s::text[], %s::int[])
ON CONFLICT (fulfillment_id) DO UPDATE SET state = excluded.state,
    state_start_time = excluded.state_start_time, state_event_id = excluded.state_event_id,
    last_event_at = excluded.last_event_at, last_event_id = excluded.last_event_id,
    input_partition = excluded.input_partition, updated_at = now()
"""


class Tables:
    """The ``current_fulfillments`` and ``fulfillments_history`` part of ``dep-tables``."""

    def __init__(self) -> None:
        spec = tomllib.loads(DEFAULT_LIFECYCLE.read_text())
        self.triggers: dict[str, str] = spec["triggers"]
        self.forward: dict[str, set[str]] = {s: set(t) for s, t in spec["transitions"].items()}

    def write(self, cur: Any, new: dict[str, list[Move]], partitions: dict[str, int]) -> None:
        ids = sorted(new)
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(f)) FROM unnest(%s::text[]) AS f ORDER BY f",
            (ids,),
        )
        cur.execute(
            "SELECT fulfillment_id, state, state_start_time, state_event_id, last_event_at,"
            " last_event_id FROM current_fulfillments WHERE fulfillment_id = ANY(%s)",
            (ids,),
        )
        rows: dict[str, Row] = {str(r[0]): list(r[1:]) for r in cur.fetchall()}
        left: list[tuple[Any, ...]] = []
        for fid in ids:
            row = rows.get(fid)
            for event_id, state, at in sorted(new[fid], key=lambda m: order_key(m[2], m[0])):
                if row is None:
                    row = rows[fid] = [state, at, event_id, at, event_id]
                    continue
                if row[3] is not None and order_key(at, event_id) <= order_key(row[3], row[4]):
                    continue  # late: dropped (the DEP recomputes from the stored events)
                row[3], row[4] = at, event_id
                if state in self.forward.get(row[0], ()):
                    seconds = int((at - row[1]).total_seconds())
                    left.append((fid, row[0], seconds, row[1], at, row[2], event_id))
                    row[0], row[1], row[2] = state, at, event_id
        with cur.copy(
            "COPY fulfillments_history (fulfillment_id, state, time_in_state, entered_at,"
            " left_at, entered_event_id, left_event_id) FROM STDIN"
        ) as copy:
            for h in left:
                copy.write_row(h)
        cur.execute(
            _UPSERT,
            (
                ids,
                *([rows[f][i] for f in ids] for i in range(5)),
                [partitions.get(f) for f in ids],
            ),
        )


def measure(settings: Settings, source: Topics, n: int, kind: str) -> Figure:
    """Run the bare ``kind`` (one of ``KINDS``) on ``source``'s fulfillment DEs."""
    de_schema, _ = schema(settings, FULFILLMENT_DE)
    tables = Tables() if kind == "dep-tables" else None
    payload = msgspec.json.Encoder()

    def write(cur: Any, batch: list[Message]) -> None:
        seen: dict[str, dict[str, Any]] = {}
        partitions: dict[str, int] = {}
        with cur.copy(
            "COPY incoming (event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload) FROM STDIN"
        ) as copy:
            for m in batch:
                r = schemaless_reader(body(m.value() or b""), de_schema, None)
                assert isinstance(r, dict)
                partitions[r["fulfillment_id"]] = m.partition() or 0
                if r["event_id"] in seen:
                    continue
                seen[r["event_id"]] = r
                copy.write_row(
                    (
                        r["event_id"],
                        r["fulfillment_id"],
                        r["event_type"],
                        r["occurred_at"],
                        r["actor_id"],
                        payload.encode(r["attributes"]).decode(),
                    )
                )
        cur.execute(
            "INSERT INTO events (event_id, fulfillment_id, event_type, created_at,"
            " created_by_id, payload) SELECT event_id, fulfillment_id, event_type, created_at,"
            " created_by_id, payload FROM incoming ON CONFLICT (event_id) DO NOTHING"
            + ("" if tables is None else " RETURNING event_id")
        )
        if tables is not None:
            new: dict[str, list[Move]] = {}
            for (event_id,) in cur.fetchall():
                r = seen[str(event_id)]
                state = tables.triggers.get(r["event_type"])
                if state is not None:
                    new.setdefault(r["fulfillment_id"], []).append(
                        (r["event_id"], state, r["occurred_at"])
                    )
            if new:
                tables.write(cur, new, partitions)

    return consume_into_db(
        settings,
        kind,
        [source.sink_bucket("demux", "fulfillment")],
        # Both programs write the ceiling's schema: each starts on empty tables, as the DEP does.
        [
            "TRUNCATE events, current_fulfillments, fulfillments_history",
            "CREATE TEMP TABLE incoming (LIKE events INCLUDING DEFAULTS)",
        ],
        write,
        n,
        "bare dep" if tables is None else "bare dep (3 tables)",
    )
