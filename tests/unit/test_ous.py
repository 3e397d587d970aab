"""The OUS workflow's command format and rules, with nothing running."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent, SystemEvent
from common.runloop import Message
from common.store import Cursor
from common.topics import Topics
from common.workflow import SELECTOR_HEADER, Selecting
from demux.stage import Demux
from dep.lifecycle import Lifecycle
from dep.ous_lifecycle import LIFECYCLE, command
from dep.ous_rules import Command, Ous, apply
from gep.stage import Gep
from tests.fakes import FakeMessage

CODEC = Codec()
TOPICS = Topics("t")
LC = Lifecycle.load(LIFECYCLE)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UID = "uid://A003/X1/X1a"


def gep(value: bytes, offset: int = 7) -> CanonicalEvent:
    msg = FakeMessage(value, UID.encode(), _offset=offset, _headers=[("da-format", b"xtss")])
    (out,) = Gep(TOPICS, CODEC)(msg)
    assert out.topic == TOPICS.canonical
    return CanonicalEvent.decode(CODEC, out.value)


def test_json_command_becomes_a_canonical_ous_event() -> None:
    body = {
        "id": "c-1",
        "operation": "set-state",
        "ousUID": UID,
        "value": "ReadyForProcessing",
        "timestamp": 1_767_225_600_000,
        "reply_to": "t.org.gooru.da.reply.cli",
    }
    e = gep(json.dumps(body).encode())
    assert (e.event_id, e.entity_type, e.entity_id, e.event_type) == (
        "c-1",
        "ous",
        UID,
        "ous.set-state",
    )
    assert e.occurred_at == T0
    assert e.attributes["reply_to"] == "t.org.gooru.da.reply.cli"


def test_plain_text_command_takes_its_id_from_its_place_in_the_log() -> None:
    e = gep(f"set-substate {UID} PipelineCalibration".encode(), offset=42)
    assert e.event_id == "0-42"
    assert dict(e.attributes) == {
        "operation": "set-substate",
        "value": "PipelineCalibration",
        "hops": "0",
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"launch {UID} X", "unknown_operation"),
        ("set-state uid://A003 Processing", "bad_ous_uid"),
        (f"set-state {UID}", "missing_value"),
        (f"set-flag {UID} noequals", "bad_value"),
        ('{"id": "x", "operation": "set-state", "ousUID": "' + UID + '"}', "missing_value"),
        ("set-state", "bad_text"),
    ],
)
def test_invalid_commands_are_dead_lettered_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        gep(body.encode())
    assert err.value.reason == reason


def test_demux_makes_one_system_de_per_command() -> None:
    e = gep(f"clear-exec {UID}".encode())
    (out,) = Demux(TOPICS, CODEC)(FakeMessage(e.encode(CODEC)))
    assert out.topic == TOPICS.sink_bucket("demux", "ous")
    de = SystemEvent.decode(CODEC, out.value)
    assert de.name == "ous.clear_exec"
    assert command(de) == Command("0-7", UID, "clear-exec", None, e.occurred_at, 0, None)


def cmd(i: int, op: str, value: str | None = None, hops: int = 0) -> Command:
    return Command(f"c{i}", UID, op, value, T0 + timedelta(minutes=i), hops)


def test_a_workflow_with_a_loop() -> None:
    ous = None
    statuses = []
    selectors = []
    for i, (op, value) in enumerate(
        [
            ("set-substate", "Calib"),
            ("set-state", "Processing"),  # not an initial state
            ("set-state", "ReadyForProcessing"),
            ("set-state", "ReadyForProcessing"),  # the same: a no-op
            ("set-state", "Processing"),
            ("set-state", "ProcessingProblem"),
            ("set-state", "ReadyForProcessing"),  # the loop
            ("set-state", "Delivered"),  # illegal
            ("set-state", "Nowhere"),
        ]
    ):
        result = apply(LC, ous, cmd(i, op, value), max_hops=4)
        ous = result.ous
        statuses.append((result.status, result.reason))
        selectors += [b.selector for b in result.broadcasts]
        if result.left is not None:
            assert result.left.left_event_id == f"c{i}"
    assert statuses == [
        (201, None),
        (409, "illegal_transition"),
        (200, None),
        (200, None),
        (200, None),
        (200, None),
        (200, None),
        (409, "illegal_transition"),
        (422, "unknown_state"),
    ]
    assert selectors == [
        "recipe.change.Calib",
        "state.change.ReadyForProcessing",
        "state.change.Processing",
        "state.change.ProcessingProblem",
        "state.change.ReadyForProcessing",
    ]
    assert ous is not None and ous.current is not None
    assert (ous.state, ous.current.event_id) == ("ReadyForProcessing", "c6")


def test_clears_and_flags_latest_wins_and_unknown_ous_is_404() -> None:
    assert apply(LC, None, cmd(0, "clear-flag", "x"), 4).status == 404
    ous: Ous | None = None
    for i, (op, value) in enumerate(
        [("set-flag", "qa=bad"), ("set-flag", "qa=ok"), ("set-exec", "EU"), ("clear-exec", None)]
    ):
        ous = apply(LC, ous, cmd(i, op, value), 4).ous
    assert ous is not None and dict(ous.flags) == {"qa": "ok"} and ous.executive is None


def test_a_first_refused_command_creates_nothing_and_actor_loops_stop() -> None:
    assert apply(LC, None, cmd(0, "set-state", "Verified"), 4).ous is None
    result = apply(LC, None, cmd(1, "set-exec", "EU", hops=5), 4)
    assert (result.status, result.reason, result.ous) == (422, "hop_limit", None)


class Recording:
    def __init__(self) -> None:
        self.decoded: list[bytes | None] = []
        self.handled: list[list[bytes | None]] = []

    def decode(self, msg: Message) -> bytes | None:
        self.decoded.append(msg.value())
        return msg.value()

    def handle(self, events: Sequence[bytes | None], cur: Cursor) -> None:
        self.handled.append(list(events))


def test_selector_subscription_skips_other_messages_without_decoding() -> None:
    inner = Recording()
    sel: Selecting[bytes | None] = Selecting(inner, ("state.change.*", "pipeline.process.EU"))

    def msg(selector: str | None, value: bytes) -> FakeMessage:
        headers = None if selector is None else [(SELECTOR_HEADER, selector.encode())]
        return FakeMessage(value, _headers=headers)

    batch = [
        msg("state.change.Processing", b"a"),
        msg("recipe.change.X", b"not avro"),
        msg("pipeline.process.EA", b"b"),
        msg("pipeline.process.EU", b"c"),
        msg(None, b"d"),
    ]
    events = [sel.decode(m) for m in batch]
    sel.handle(events, None)  # type: ignore[arg-type]
    assert inner.decoded == [b"a", b"c"] and inner.handled == [[b"a", b"c"]]
    assert sel.skipped == 3
    sel.handle([None, None], None)  # type: ignore[arg-type]
    assert inner.handled == [[b"a", b"c"]]  # nothing selected: the handler is not called
