"""The one life-cycle engine: an entity kind's states and moves as data, applied by one function.

A life-cycle file (TOML) declares, per entity kind:

- ``states``; ``initial`` (the states an entity may start in; default: all of them);
  ``terminal`` (states nothing leaves; checked against the graph);
- ``transitions``: ``from = [to, ...]``, any graph, loops included (default: forward only, in
  the order of ``states``);
- ``triggers``: event type -> the state it moves the entity to (a command such as ``set-state``
  names its target itself);
- ``attributes``: what else the entity carries (substates, flags: the latest value wins);
- ``strict`` (default true): an illegal move is rejected and the entity stays; when false it is
  applied and flagged;
- ``order``: ``event_time`` (analytics: distinct events sorted by ``(time, id)``, whatever order
  they arrived in) or ``log`` (a system of record: moves apply in the order they were logged,
  because their answers have already been given).

``step`` is the whole rule set for one move; ``replay`` applies it to a sequence. A move to the
current state is a no-op (the first start is kept). ``advance`` is the incremental form: it goes
on from what an entity's earlier events left (``Progress``) when the new events all come after
them, and says when they do not (a late event), so the caller replays that entity's whole history;
both give the same result.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

Order = Literal["event_time", "log"]
Verdict = Literal["entered", "moved", "same", "rejected"]
Move = tuple[str, str, datetime]  # event id, event type (or target state), time


@dataclass(frozen=True, slots=True)
class Entered:
    state: str
    at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Left:
    state: str
    entered_at: datetime
    left_at: datetime
    seconds: int
    entered_event_id: str
    left_event_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one move did. ``reason`` is set when it was illegal (rejected, or flagged when the
    life-cycle is not strict): ``unknown_state``, ``not_initial`` or ``illegal_transition``."""

    verdict: Verdict
    event_id: str
    source: str | None
    target: str
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.verdict in ("entered", "moved")


@dataclass(frozen=True, slots=True)
class Progress:
    """What an entity's events applied so far left: the current state (None: none entered yet)
    and the last of those events in this life-cycle's order, which a new one must come after to
    be applied on top."""

    current: Entered | None
    last_at: datetime
    last_event_id: str


def order_key(created_at: datetime, event_id: str) -> tuple[datetime, int, int, str]:
    """Event-time order: by time, then by id; numeric ids compare as numbers."""
    if event_id.isascii() and event_id.isdigit():
        return (created_at, 0, int(event_id), "")
    return (created_at, 1, 0, event_id)


def whole_seconds(start: datetime, end: datetime) -> int:
    delta = end - start
    return max(0, delta.days * 86_400 + delta.seconds)  # days included; sub-second dropped


@dataclass(frozen=True)
class Lifecycle:
    states: tuple[str, ...]
    triggers: Mapping[str, str] = field(default_factory=dict)
    transitions: Mapping[str, frozenset[str]] | None = None  # None: forward only
    initial: frozenset[str] | None = None  # None: every state
    terminal: frozenset[str] = frozenset()
    attributes: tuple[str, ...] = ()
    strict: bool = True
    order: Order = "event_time"

    def __post_init__(self) -> None:
        if len(set(self.states)) != len(self.states) or not self.states:
            raise ValueError("states must be a non-empty list without repeats")
        known = set(self.states)
        unknown = {s for s in self.triggers.values() if s not in known}
        if unknown:
            raise ValueError(f"triggers name unknown states: {sorted(unknown)}")
        if self.transitions is None:
            graph = {s: frozenset(self.states[i + 1 :]) for i, s in enumerate(self.states)}
            object.__setattr__(self, "transitions", graph)
        named = set(self.graph) | {t for ts in self.graph.values() for t in ts}
        named |= set(self.starts) | set(self.terminal)
        if named - known:
            raise ValueError(f"transitions name unknown states: {sorted(named - known)}")
        leaving = sorted(s for s in self.terminal if self.graph.get(s))
        if leaving:
            raise ValueError(f"terminal states have transitions out: {leaving}")
        if self.order not in ("event_time", "log"):
            raise ValueError(f"order must be 'event_time' or 'log', not {self.order!r}")

    @property
    def graph(self) -> Mapping[str, frozenset[str]]:
        return self.transitions or {}

    @property
    def starts(self) -> frozenset[str]:
        return frozenset(self.states) if self.initial is None else self.initial

    @cached_property
    def triggers_all_start(self) -> bool:
        """Whether every trigger may start an entity: then the first of its trigger events in
        any order enters a state, and an entity with none entered has no trigger event."""
        return all(t in self.starts for t in self.triggers.values())

    @classmethod
    def load(cls, path: Path) -> Lifecycle:
        data = tomllib.loads(path.read_text())
        try:
            raw = data.get("transitions")
            return cls(
                states=tuple(data["states"]),
                triggers=dict(data.get("triggers", {})),
                transitions=None
                if raw is None
                else {s: frozenset(ts) for s, ts in dict(raw).items()},
                initial=None if "initial" not in data else frozenset(data["initial"]),
                terminal=frozenset(data.get("terminal", ())),
                attributes=tuple(data.get("attributes", ())),
                strict=bool(data.get("strict", True)),
                order=data.get("order", "event_time"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def check(self, source: str | None, target: str) -> str | None:
        """Why moving from ``source`` (None: a new entity) to ``target`` is illegal, or None."""
        if target not in self.states:
            return "unknown_state"
        if source is None:
            return None if target in self.starts else "not_initial"
        if target != source and target not in self.graph.get(source, frozenset()):
            return "illegal_transition"
        return None

    def step(
        self, current: Entered | None, target: str, at: datetime, event_id: str
    ) -> tuple[Entered | None, Left | None, Outcome]:
        """Apply one move: the new current state, the visit it closed (if any), what happened."""
        source = None if current is None else current.state
        reason = self.check(source, target)
        if reason == "unknown_state" or (reason is not None and self.strict):
            return current, None, Outcome("rejected", event_id, source, target, reason)
        if current is None:
            return (
                Entered(target, at, event_id),
                None,
                Outcome("entered", event_id, None, target, reason),
            )
        if target == current.state:
            return current, None, Outcome("same", event_id, source, target)
        left = Left(
            current.state,
            current.at,
            at,
            whole_seconds(current.at, at),
            current.event_id,
            event_id,
        )
        return (
            Entered(target, at, event_id),
            left,
            Outcome("moved", event_id, source, target, reason),
        )

    def replay(
        self, events: Iterable[tuple[str, str, datetime]]
    ) -> tuple[Entered | None, list[Left]]:
        """``events``: (event_id, event_type, created_at), no duplicate ids; in any order for an
        ``event_time`` life-cycle, in log order for a ``log`` one. Event types that trigger no
        state are skipped."""
        progress, history = self.from_scratch(events)
        return (None if progress is None else progress.current), history

    def from_scratch(
        self, events: Iterable[tuple[str, str, datetime]]
    ) -> tuple[Progress | None, list[Left]]:
        """``replay``, with the progress it leaves (None: no event triggered anything)."""
        moves = self._moves(events)
        if not moves:
            return None, []
        return self._apply(None, moves)

    def advance(
        self, progress: Progress, events: Iterable[tuple[str, str, datetime]]
    ) -> tuple[Progress, list[Left]] | None:
        """Apply ``events`` (as for ``replay``) on top of ``progress``, without the events that
        led there: the result equals ``from_scratch`` of all of them. None when an event belongs
        before the last one applied (event-time order only): the caller then replays the whole
        history with ``from_scratch``."""
        moves = self._moves(events)
        if (
            moves
            and self.order == "event_time"
            and order_key(moves[0][2], moves[0][0])
            <= order_key(progress.last_at, progress.last_event_id)
        ):
            return None
        if not moves:
            return progress, []
        return self._apply(progress.current, moves)

    def _moves(self, events: Iterable[Move]) -> list[Move]:
        moves = [
            (event_id, self.triggers[etype], at)
            for event_id, etype, at in events
            if etype in self.triggers
        ]
        if self.order == "event_time":
            moves.sort(key=lambda m: order_key(m[2], m[0]))
        return moves

    def _apply(self, current: Entered | None, moves: list[Move]) -> tuple[Progress, list[Left]]:
        current, history, _ = self.run(moves, current)
        last_id, _, last_at = moves[-1]
        return Progress(current, last_at, last_id), history

    def run(
        self, moves: Iterable[tuple[str, str, datetime]], current: Entered | None = None
    ) -> tuple[Entered | None, list[Left], list[Outcome]]:
        """Apply moves (event_id, target state, at) from ``current``, in this life-cycle's order."""
        seq = list(moves)
        if self.order == "event_time":
            seq.sort(key=lambda m: order_key(m[2], m[0]))
        history: list[Left] = []
        outcomes: list[Outcome] = []
        for event_id, target, at in seq:
            current, left, outcome = self.step(current, target, at, event_id)
            if left is not None:
                history.append(left)
            outcomes.append(outcome)
        return current, history, outcomes
