"""The chaos run's wait for its tables: as long as the pipeline moves, no longer than it stands
still (``tests.chaos.converge``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tests.chaos.converge import wait


def looks(*answers: list[str]) -> Callable[[], list[str]]:
    """A check answering ``answers`` in turn, then the last one for ever."""
    it: Iterator[list[str]] = iter(answers)
    last: list[list[str]] = [answers[-1]]

    def check() -> list[str]:
        last[0] = next(it, last[0])
        return last[0]

    return check


def counter(step: int) -> Callable[[], int]:
    n = [0]

    def progress() -> int:
        n[0] += step
        return n[0]

    return progress


def test_the_wait_ends_when_the_tables_match() -> None:
    check = looks(["events: 3 missing"], ["events: 1 missing"], [])
    assert wait(check, counter(0), still_s=60, tick=lambda: None, every_s=0.01) == []


def test_a_pipeline_that_stands_still_fails_saying_so() -> None:
    got = wait(looks(["usage: 2 differ"]), counter(0), still_s=0.1, tick=lambda: None, every_s=0.01)
    assert got[0] == "usage: 2 differ"
    assert got[1].startswith("nothing moved for 0.1 s")


def test_moving_offsets_keep_the_wait_going_past_the_still_time() -> None:
    # The differences stay the same for 30 looks (0.3 s, three times the still time) while the
    # committed offsets grow: a slow catch-up, not a stall.
    check = looks(*[["events: 5 missing"]] * 30, [])
    ticks: list[None] = []
    assert wait(check, counter(1), 0.1, lambda: ticks.append(None), every_s=0.01) == []
    assert len(ticks) == 30
