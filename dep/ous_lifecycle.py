"""DEP ``ous-lifecycle``: the OUS state service. It applies the workflow's commands
(``ous.<operation>`` DEs) in the order they were logged, per the life-cycle in
``ous_lifecycle.toml`` and the rules in ``dep.ous_rules``, and keeps ``ous_status``,
``ous_state_history`` (one row per visit of a state that was left), ``ous_rejections`` and
``ous_commands`` (every command applied, with its answer).

Answers and broadcasts go into the outbox in the transaction that applies the commands: a
command's answer goes to its ``reply_to`` topic keyed by the command id; a repeated command id
is not applied again, its stored answer is sent again. Broadcasts go to
``org.gooru.da.sink.dep.ous`` keyed by OUS (one OUS's changes stay in order), with the selector
in the ``da-selector`` header for subscribers to filter on without decoding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from common.codec import Codec
from common.events import SystemEvent
from common.names import dep_stage
from common.outbox import Outbox, OutboxMessage
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.topics import Topics
from common.workflow import SELECTOR_HEADER
from dep.lifecycle import Entered, Lifecycle
from dep.ous_rules import Command, Ous, Result, apply
from dep.spec import DepSpec

NAME = "ous-lifecycle"
STAGE = dep_stage(NAME)
LIFECYCLE = Path(__file__).with_name("ous_lifecycle.toml")


class OusLifecycle:
    def __init__(self, codec: Codec, topics: Topics, lifecycle: Lifecycle, max_hops: int) -> None:
        if lifecycle.order != "log":
            raise ValueError("the OUS life-cycle is a system of record: its order must be 'log'")
        self.codec = codec
        self.topics = topics
        self.lifecycle = lifecycle
        self.max_hops = max_hops
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> SystemEvent:
        return SystemEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[SystemEvent], cur: Cursor) -> None:
        uids = sorted({e.entity_id for e in events})
        # One instance owns an OUS's partition, but during a rebalance two may briefly meet.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(u)) FROM unnest(%s::text[]) AS u ORDER BY u",
            (uids,),
        )
        cur.execute(
            "SELECT command_id, reply FROM ous_commands WHERE command_id = ANY(%s)",
            ([e.event_id for e in events],),
        )
        answered: dict[str, Any] = {str(i): r for i, r in cur.fetchall()}
        status = self._load(cur, uids)
        out: list[OutboxMessage] = []
        commands: list[tuple[Any, ...]] = []
        rejections: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        for e in events:
            c = command(e)
            if c.command_id in answered:
                out += self._reply(c, answered[c.command_id])  # the same answer again
                continue
            result = self._apply(status.get(c.ous_uid), c)
            if result.ous is not None:
                status[c.ous_uid] = result.ous
            body = result.reply(c.command_id)
            answered[c.command_id] = body
            commands.append(
                (c.command_id, c.ous_uid, c.operation, c.value, result.status, Jsonb(body), c.at)
            )
            if not result.accepted or result.detail:
                rejections.append(
                    (
                        c.command_id,
                        c.ous_uid,
                        c.operation,
                        c.value,
                        result.reason or result.detail,
                        result.detail,
                        c.at,
                        result.accepted,
                    )
                )
            if result.left is not None:
                h = result.left
                history.append(
                    (
                        c.ous_uid,
                        h.state,
                        h.entered_at,
                        h.left_at,
                        h.seconds,
                        h.entered_event_id,
                        h.left_event_id,
                    )
                )
            out += self._reply(c, body)
            out += self._broadcasts(e, result)
        self._store(cur, status, commands, rejections, history)
        self.outbox.add(cur, out)

    def _apply(self, ous: Ous | None, c: Command) -> Result:
        if c.reply_to is not None and c.reply_to not in self.topics.replies:
            detail = f"reply_to {c.reply_to!r} is not one of {', '.join(self.topics.replies)}"
            return Result(ous, 422, "reply_to_not_allowed", detail)
        return apply(self.lifecycle, ous, c, self.max_hops)

    def _reply(self, c: Command, body: Any) -> list[OutboxMessage]:
        if c.reply_to is None or c.reply_to not in self.topics.replies:
            return []
        value = json.dumps(body, sort_keys=True).encode()
        return [
            OutboxMessage(
                c.reply_to, c.command_id.encode(), value, (("da-ous", c.ous_uid.encode()),)
            )
        ]

    def _broadcasts(self, e: SystemEvent, result: Result) -> list[OutboxMessage]:
        ous = result.ous
        if ous is None:
            return []
        out = []
        for b in result.broadcasts:
            attributes = {
                "selector": b.selector,
                "command_id": e.event_id,
                "hops": e.attributes.get("hops", "0"),
                "state": ous.state or "",
                "from": b.source or "",
                "substate": ous.substate or "",
                "executive": ous.executive or "",
                # The command that started the current visit of the state: a visit's identity.
                "visit": "" if ous.current is None else ous.current.event_id,
            }
            de = SystemEvent(
                name=b.name,
                event_id=f"{e.event_id}:{b.name}",
                entity_id=ous.uid,
                occurred_at=e.occurred_at,
                lineage=e.lineage.next_hop(STAGE, self.max_hops),
                attributes=attributes,
            )
            headers = (("da-de-name", b.name.encode()), (SELECTOR_HEADER, b.selector.encode()))
            topic = self.topics.sink_bucket("dep", "ous")
            out.append(OutboxMessage(topic, ous.uid.encode(), de.encode(self.codec), headers))
        return out

    def _load(self, cur: Cursor, uids: list[str]) -> dict[str, Ous]:
        cur.execute(
            "SELECT ous_uid, state, state_since, state_command_id, substate, executive, flags, "
            "created_at, updated_at FROM ous_status WHERE ous_uid = ANY(%s)",
            (uids,),
        )
        out = {}
        rows: list[tuple[Any, ...]] = cur.fetchall()
        for uid, state, since, by, substate, executive, flags, created, updated in rows:
            current = None if state is None else Entered(str(state), since, str(by))
            out[str(uid)] = Ous(
                str(uid), current, substate, executive, dict(flags), created, updated
            )
        return out

    def _store(
        self,
        cur: Cursor,
        status: dict[str, Ous],
        commands: list[tuple[Any, ...]],
        rejections: list[tuple[Any, ...]],
        history: list[tuple[Any, ...]],
    ) -> None:
        cur.executemany(
            "INSERT INTO ous_commands (command_id, ous_uid, operation, value, status, reply, at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            commands,
        )
        cur.executemany(
            "INSERT INTO ous_rejections (command_id, ous_uid, operation, value, reason, detail, "
            "at, applied) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rejections,
        )
        cur.executemany(
            "INSERT INTO ous_state_history (ous_uid, state, entered_at, left_at, seconds, "
            "entered_command_id, left_command_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            history,
        )
        rows = [_status_row(o) for o in status.values() if o.updated_at is not None]
        cur.executemany(
            "INSERT INTO ous_status (ous_uid, state, state_since, state_command_id, substate, "
            "executive, flags, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (ous_uid) DO UPDATE SET state = EXCLUDED.state, "
            "state_since = EXCLUDED.state_since, state_command_id = EXCLUDED.state_command_id, "
            "substate = EXCLUDED.substate, executive = EXCLUDED.executive, flags = EXCLUDED.flags, "
            "updated_at = EXCLUDED.updated_at",
            rows,
        )


def _status_row(o: Ous) -> tuple[Any, ...]:
    c = o.current
    return (
        o.uid,
        None if c is None else c.state,
        None if c is None else c.at,
        None if c is None else c.event_id,
        o.substate,
        o.executive,
        Jsonb(dict(o.flags)),
        o.created_at,
        o.updated_at,
    )


def command(e: SystemEvent) -> Command:
    a = e.attributes
    return Command(
        command_id=e.event_id,
        ous_uid=e.entity_id,
        operation=a.get("operation", e.action.replace("_", "-")),
        value=a.get("value"),
        at=e.occurred_at,
        hops=_int(a.get("hops")),
        reply_to=a.get("reply_to"),
    )


def _int(text: str | None) -> int:
    return int(text) if text is not None and text.isascii() and text.isdigit() else 0


def build(settings: Settings, codec: Codec) -> OusLifecycle:
    topics = Topics(settings.namespace)
    return OusLifecycle(codec, topics, Lifecycle.load(LIFECYCLE), settings.max_hops)


SPEC = DepSpec(
    name=NAME,
    description="The OUS workflow's state service: commands, answers, state-change broadcasts",
    inputs=(("demux", "ous"),),
    tables=("ous_status", "ous_state_history", "ous_rejections", "ous_commands"),
    migrations=Path(__file__).parent / "migrations" / "ous_lifecycle",
    input_schemas=("de/system",),
    build=build,
    emits=(("dep", "ous"),),
    emits_schema="de/system",
    outbox=True,
    outbox_exactly_once=True,
)
