"""The fulfillment DEP's fast path against the full recompute: events arriving in batches, in order
or late, duplicated, on random life-cycles; applying each batch on top of the stored progress
(``catch_up``, replaying only when it says so) must leave what replaying every distinct event
leaves."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dep.fulfillment_state import Trigger, catch_up
from dep.lifecycle import Left, Lifecycle, Progress
from tests.unit.test_lifecycle_property import lifecycles

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Stored:
    """What the DEP keeps for one fulfillment: its events, its row, its history."""

    events: dict[str, Trigger] = field(default_factory=dict)
    row: Progress | None = None
    has_row: bool = False
    history: list[Left] = field(default_factory=list)
    replays: int = 0

    def take(self, lc: Lifecycle, batch: list[Trigger]) -> None:
        new: dict[str, Trigger] = {}
        for e in batch:
            if e[0] not in self.events:
                new.setdefault(e[0], e)
        self.events |= new
        if not any(t in lc.triggers for _, t, _ in new.values()):
            return
        done = catch_up(lc, self.row, self.has_row, list(new.values()))
        if done is None:
            self.replays += 1
            self.history = []
            done = lc.from_scratch(self.events.values())
        progress, left = done
        self.history += left
        if progress is not None and progress.current is not None:
            self.row, self.has_row = progress, True


@st.composite
def timed_lifecycles(draw: Any) -> Lifecycle:
    lc = draw(lifecycles())
    triggers = {f"T{s}": s for s in lc.states if draw(st.booleans())}
    return Lifecycle(
        lc.states, triggers, lc.transitions, lc.initial, lc.terminal, (), lc.strict, "event_time"
    )


@st.composite
def events(draw: Any, lc: Lifecycle) -> list[Trigger]:
    types = st.sampled_from([*lc.triggers, "Untracked"])
    count = draw(st.integers(0, 20))
    ids = draw(
        st.lists(
            st.one_of(st.integers(0, 10_000).map(str), st.text("abcxyz", min_size=1, max_size=3)),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    # Few distinct times, so ties (broken by id) are common.
    return [(i, draw(types), T0 + timedelta(seconds=draw(st.integers(0, 6)) * 61.5)) for i in ids]


def _batches(draw: Any, seq: list[Trigger]) -> list[list[Trigger]]:
    """``seq`` cut into batches, with some events sent again later."""
    again = draw(st.lists(st.sampled_from(seq), max_size=5)) if seq else []
    seq = seq + again
    cuts = sorted(draw(st.lists(st.integers(0, len(seq)), max_size=6)))
    bounds = [0, *cuts, len(seq)]
    return [seq[a:b] for a, b in itertools.pairwise(bounds)]


def _check(lc: Lifecycle, distinct: list[Trigger], batches: list[list[Trigger]]) -> Stored:
    stored = Stored()
    for batch in batches:
        stored.take(lc, batch)
    want_current, want_history = lc.replay(distinct)
    assert (None if stored.row is None else stored.row.current) == want_current
    assert sorted(stored.history, key=repr) == sorted(want_history, key=repr)
    return stored


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_batches_in_event_time_order_never_replay(data: st.DataObject) -> None:
    lc = data.draw(timed_lifecycles())
    distinct = data.draw(events(lc))
    in_order = sorted(distinct, key=lambda e: (e[2], *_id_key(e[0])))
    stored = _check(lc, distinct, _batches(data.draw, in_order))
    if all(t in lc.starts for t in lc.triggers.values()):
        assert stored.replays == 0


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_batches_in_any_order_equal_the_full_recompute(data: st.DataObject) -> None:
    lc = data.draw(timed_lifecycles())
    distinct = data.draw(events(lc))
    arrived = data.draw(st.permutations(distinct))
    _check(lc, distinct, _batches(data.draw, arrived))


def _id_key(event_id: str) -> tuple[int, int, str]:
    return (0, int(event_id), "") if event_id.isdigit() else (1, 0, event_id)


def test_a_start_arriving_after_rejected_events_replays_them() -> None:
    """Without a row, a fulfillment may still have stored events: ones that could not start it.
    A start that arrives later but belongs before them must be replayed with them."""
    lc = Lifecycle(("S0", "S1"), {"TS0": "S0", "TS1": "S1"}, initial=frozenset({"S0"}))
    late_start = ("1", "TS0", T0)
    first = ("2", "TS1", T0 + timedelta(seconds=30))
    stored = _check(lc, [first, late_start], [[first], [late_start]])
    assert stored.replays == 2 and stored.row is not None and stored.row.current is not None
    assert stored.row.current.state == "S1"
