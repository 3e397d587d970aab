"""The life-cycle engine against a plain reference, on random graphs and random move sequences,
in both orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dep.lifecycle import Lifecycle

T0 = datetime(2024, 3, 1, tzinfo=UTC)
Move = tuple[str, str, datetime]


@st.composite
def lifecycles(draw: Any) -> Lifecycle:
    n = draw(st.integers(1, 6))
    states = tuple(f"S{i}" for i in range(n))
    graph = {
        s: frozenset(draw(st.lists(st.sampled_from(states), max_size=n)))
        for s in states
        if draw(st.booleans())
    }
    terminal = frozenset(s for s in states if not graph.get(s) and draw(st.booleans()))
    initial = frozenset(draw(st.lists(st.sampled_from(states), min_size=1, max_size=n)))
    return Lifecycle(
        states=states,
        transitions=graph,
        initial=initial,
        terminal=terminal,
        strict=draw(st.booleans()),
        order=draw(st.sampled_from(["event_time", "log"])),
    )


@st.composite
def moves(draw: Any, lc: Lifecycle) -> list[Move]:
    targets = st.sampled_from([*lc.states, "Unknown"])
    count = draw(st.integers(0, 25))
    ids = draw(
        st.lists(
            st.one_of(st.integers(0, 10_000).map(str), st.text("abcxyz", min_size=1, max_size=3)),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    # Few distinct times, so ties (broken by id) are common.
    return [(i, draw(targets), T0 + timedelta(seconds=draw(st.integers(0, 5)) * 90.5)) for i in ids]


def _key(m: Move) -> tuple[Any, ...]:
    event_id, _, at = m
    return (at, 0, int(event_id), "") if event_id.isdigit() else (at, 1, 0, event_id)


def reference(lc: Lifecycle, seq: list[Move]) -> tuple[Any, list[Any], list[str]]:
    """The rules, written out plainly."""
    if lc.order == "event_time":
        seq = sorted(seq, key=_key)
    state: str | None = None
    since: tuple[datetime, str] | None = None
    history = []
    verdicts = []
    for event_id, target, at in seq:
        if target not in lc.states:
            verdicts.append("rejected")
            continue
        if state is None:
            legal = target in lc.starts
        else:
            legal = target == state or target in lc.graph.get(state, frozenset())
        if not legal and lc.strict:
            verdicts.append("rejected")
            continue
        if state == target:
            verdicts.append("same")
            continue
        if state is not None and since is not None:
            secs = int((at - since[0]).total_seconds()) if at >= since[0] else 0
            history.append((state, since[0], at, secs, since[1], event_id))
        verdicts.append("entered" if state is None else "moved")
        state, since = target, (at, event_id)
    current = None if state is None or since is None else (state, since[0], since[1])
    return current, history, verdicts


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_engine_equals_the_reference(data: st.DataObject) -> None:
    lc = data.draw(lifecycles())
    seq = data.draw(moves(lc))
    current, history, outcomes = lc.run(seq)
    want_current, want_history, want_verdicts = reference(lc, seq)
    got = None if current is None else (current.state, current.at, current.event_id)
    assert got == want_current
    assert [
        (h.state, h.entered_at, h.left_at, h.seconds, h.entered_event_id, h.left_event_id)
        for h in history
    ] == want_history
    assert [o.verdict for o in outcomes] == want_verdicts


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_event_time_order_ignores_arrival_order(data: st.DataObject) -> None:
    lc = data.draw(lifecycles())
    seq = data.draw(moves(lc))
    shuffled = data.draw(st.permutations(seq))
    timed = Lifecycle(
        lc.states, {}, lc.transitions, lc.initial, lc.terminal, (), lc.strict, "event_time"
    )
    assert timed.run(shuffled)[:2] == timed.run(seq)[:2]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_run_resumes_from_a_stored_state(data: st.DataObject) -> None:
    """Log order applies each command once, when it comes: running a sequence in two pieces,
    the second from the first's state, gives what running it at once gives."""
    lc = data.draw(lifecycles())
    logged = Lifecycle(lc.states, {}, lc.transitions, lc.initial, lc.terminal, (), lc.strict, "log")
    seq = data.draw(moves(lc))
    cut = data.draw(st.integers(0, len(seq)))
    first, h1, o1 = logged.run(seq[:cut])
    last, h2, o2 = logged.run(seq[cut:], first)
    assert (last, h1 + h2, o1 + o2) == logged.run(seq)
