"""The chaos run's input: a mixed stream of proctoring events (``da sample``'s CSV rows),
learning raw messages (``da sample learning``'s class), each out of order with some sent twice,
and OUS workflow commands (``da sample workflow``: illegal moves, unknown states, a repeated id,
both body shapes; then each OUS a random way along its life-cycle; in order per OUS, as their
senders keep it), interleaved at random (the poison
among them is ``tests.chaos.poison``'s).

The learning sample is one class scaled by the generator's parameters (students, units, lessons)
rather than several seeds' classes merged: every class of the generator has the same class,
content and learner ids, and its event ids are a sequence number plus 16 random bits, so two
seeds' classes would give one event id to two different events.

The metadata of ``tests.learning_check.LATE``'s content (and a retag) is held back until after
every learning play, so scores of it wait parked while faults go on, and all of it is sent in
the end: the final state is well defined.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cli.emit_input import Message, Row, read_jsonl, to_message
from cli.sample.fulfillments import SampleRow
from cli.sample.fulfillments import generate as sample_proctoring
from cli.sample.learning import generate as sample_learning
from cli.sample.workflow import generate as sample_workflow
from tests.learning_check import held_back

LEARNING_DEPS = ("content-catalog", "usage-metrics", "collection-rollup", "competency-stats")
COMMANDS = {  # every stage the run keeps going, by the name its instances are called
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "fulfillment-state": ["dep", "run", "fulfillment-state"],
} | {d: ["dep", "run", d] for d in (*LEARNING_DEPS, "ous-lifecycle")}
DOMAINS = ("proctoring", "learning", "workflow")
T = TypeVar("T")


@dataclass(frozen=True)
class Mix:
    """How big each domain's part of the stream is."""

    fulfillments: int  # ~7.96 proctoring events each, repeats included
    students: int  # learning: one class, this many students ...
    units: int = 4  # ... following a course of units ...
    lessons: int = 4  # ... of this many lessons each (~4.6 learning events per student each)
    ous: int = 20  # workflow: this many OUSs (~4.3 commands each)

    @classmethod
    def of(cls, events: int, units: int = 4, lessons: int = 4) -> Mix:
        """About ``events`` raw events in all: 65 % proctoring, 30 % learning, 5 % workflow."""
        return cls(
            fulfillments=max(1, round(events * 0.65 / 7.96)),
            students=max(1, round(events * 0.3 / (units * lessons * 4.6))),
            units=units,
            lessons=lessons,
            ous=max(1, round(events * 0.05 / 4.3)),
        )


@dataclass
class Stream:
    messages: list[tuple[str, Message]]  # (domain, message), in the order sent
    proctoring: list[dict[str, str]]  # the valid rows sent, as the proctoring oracle takes them
    learning: list[tuple[str, Any]]  # (format, value) sent, as the learning oracle takes them
    workflow: list[tuple[str, str, str | None]]  # (OUS, operation, value) of each command sent
    held_back: int = 0  # learning metadata sent after every play

    def count(self, domain: str, *, distinct: bool = False) -> int:
        values = [m.value for d, m in self.messages if d == domain]
        return len(set(values)) if distinct else len(values)


def make_stream(seed: int, mix: Mix) -> Stream:
    rng = random.Random(seed)
    rows = proctoring(rng, seed, mix.fulfillments)
    plays, held = held_back(sample_learning(seed, mix.students, mix.units, mix.lessons))
    plays = disorder(rng, plays, window=30, twice=len(plays) // 20)
    lines = plays + held
    learning = [m for m in read_jsonl(json.dumps(r) for r in lines) if isinstance(m, Message)]
    if len(learning) != len(lines):
        raise ValueError("a sample line did not become a message")
    proct = [to_message(Row(n, r)) for n, r in enumerate(rows, 1)]
    # Not the lines GEP refuses (keyed "x": no OUS): the poison is the run's only bad input.
    commands = [r for r in sample_workflow(seed, mix.ous, reply_to=None) if r["key"] != "x"]
    commands += walks(rng, commands)
    workflow = [m for m in read_jsonl(json.dumps(r) for r in commands) if isinstance(m, Message)]
    if len(workflow) != len(commands):
        raise ValueError("a workflow command did not become a message")
    messages = interleave(
        rng,
        [("proctoring", m) for m in proct if isinstance(m, Message)],
        interleave(rng, [("learning", m) for m in learning], [("workflow", m) for m in workflow]),
    )
    learned = [(r["format"], r["value"]) for r in lines]
    return Stream(messages, rows, learned, [_command(r) for r in commands], len(held))


# Where ReadyForProcessing leads, one step at a time, as the processing actors and people take an
# OUS on (``tests/e2e/test_workflow_pipeline.py`` runs the actors themselves).
ONWARD = (
    "Processing",
    "ReadyForReview",
    "Reviewing",
    "Verified",
    "DeliveryInProgress",
    "Delivered",
)
WALKS_FROM = datetime(2026, 6, 1, tzinfo=UTC)  # after every command of the sample's


def walks(rng: random.Random, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each OUS of ``commands`` (all left in ReadyForProcessing) taken on a random number of steps
    towards Delivered, now and then through a processing problem and back; after all of
    ``commands``, so every OUS's commands stay in order."""
    out: list[dict[str, Any]] = []
    for uid in dict.fromkeys(r["key"] for r in commands):
        moves: list[str] = []
        for target in ONWARD[: rng.randint(0, len(ONWARD))]:
            if target == "ReadyForReview" and rng.random() < 0.2:
                moves += ["ProcessingProblem", "ReadyForProcessing", "Processing"]
            moves.append(target)
        for target in moves:
            at = WALKS_FROM + timedelta(minutes=len(out))
            body = {
                "id": f"walk-{len(out):06d}",
                "operation": "set-state",
                "ousUID": uid,
                "value": target,
                "timestamp": int(at.timestamp() * 1000),
            }
            out.append({"format": "xtss", "key": uid, "value": body})
    return out


def _command(record: dict[str, Any]) -> tuple[str, str, str | None]:
    """(OUS, operation, value) of a command in either body shape, as the state service logs it."""
    if "text" in record:
        operation, uid, *value = record["text"].split(" ", 2)
        return uid, operation, value[0] if value else None
    body = record["value"]
    return body["ousUID"], body["operation"], body.get("value")


def proctoring(rng: random.Random, seed: int, fulfillments: int) -> list[dict[str, str]]:
    names = [f.name for f in fields(SampleRow)]
    # Flat rows of strings: field by field, not ``asdict``'s deep copy (a third of the time of
    # a million-event stream).
    rows = [
        {k: str(getattr(r, k)) for k in names}
        for r in sample_proctoring(seed=seed, count=fulfillments)
    ]
    return disorder(rng, rows, window=50, twice=len(rows) // 25)


def disorder(rng: random.Random, items: list[T], *, window: int, twice: int) -> list[T]:
    """Shuffled within consecutive windows, and ``twice`` of them sent again up to 200 later."""
    out = list(items)
    for start in range(0, len(out), window):
        chunk = out[start : start + window]
        rng.shuffle(chunk)
        out[start : start + window] = chunk
    for i in sorted(rng.sample(range(len(out)), twice), reverse=True):
        out.insert(min(len(out), i + rng.randrange(1, 200)), out[i])
    return out


def interleave(rng: random.Random, a: list[T], b: list[T]) -> list[T]:
    """A uniformly random merge that keeps each list's own order."""
    at_a = set(rng.sample(range(len(a) + len(b)), len(a)))
    ia, ib = iter(a), iter(b)
    return [next(ia) if n in at_a else next(ib) for n in range(len(a) + len(b))]
