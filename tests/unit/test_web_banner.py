"""The wait-time board's red banner: shown while ``fulfillment-state`` is stalled, stopped or
behind, or while its status is unknown; never for one sample's blip."""

from __future__ import annotations

import time
from typing import Any

from web.pages.fulfillments import STAGE, banner
from web.status_feed import StatusView


def _view(verdict: str, held: int, age_s: float = 0.5, problem: str | None = None) -> StatusView:
    row: dict[str, Any] = {
        "stage": STAGE,
        "verdict": verdict,
        "why": "lag, and no commit since the last sample",
        "outstanding": 12,
        "behind_s": 40.0,
        "next": "fulfillment-state-1:4242 on 127.0.0.1: holds lagging partitions",
    }
    return StatusView(time.time() - age_s, [row], {}, {STAGE: held}, [], problem)


def test_no_banner_while_the_dep_is_caught_up() -> None:
    assert banner(_view("OK", 30)) == ""


def test_a_stall_held_for_two_samples_shows_the_banner_with_the_next_command() -> None:
    text = banner(_view("STALLED", 2))
    assert 'class="banner"' in text and "STALLED" in text and "12 event(s)" in text
    assert "fulfillment-state-1:4242" in text


def test_one_sample_of_stall_is_not_enough_but_a_stop_is() -> None:
    assert banner(_view("STALLED", 1)) == ""
    assert "STOPPED" in banner(_view("STOPPED", 1))


def test_behind_is_red_too() -> None:
    assert "CATCHING_UP" in banner(_view("CATCHING_UP", 3))


def test_a_status_that_is_old_or_unreadable_is_unknown_not_fine() -> None:
    assert "unknown" in banner(_view("OK", 30, age_s=60))
    assert "broker down" in banner(_view("OK", 30, problem="broker down"))


def test_an_initial_load_shows_its_summary_and_each_stage() -> None:
    from web.pages.status import initial_load

    assert initial_load(None) == ""
    shown = initial_load(
        {
            "summary": "initial load 87 %: GEP done, demux done, 1 DEP loading, ETA 40 s",
            "percent": 87,
            "eta_s": 40.0,
            "done": False,
            "stages": [
                {"stage": "gep", "done": True, "partitions_done": 6, "partitions": 6},
                {
                    "stage": "fulfillment-state",
                    "done": False,
                    "partitions_done": 4,
                    "partitions": 6,
                },
            ],
        }
    )
    assert "initial load 87 %" in shown and "width:87.0%" in shown
    assert "gep done" in shown and "fulfillment-state 4/6" in shown
