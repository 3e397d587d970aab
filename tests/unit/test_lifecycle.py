from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.codec import Codec
from common.settings import Settings, SettingsError
from dep.fulfillment_state import DEFAULT_LIFECYCLE, build
from dep.lifecycle import Lifecycle, order_key, whole_seconds

LC = Lifecycle.load(DEFAULT_LIFECYCLE)
T0 = datetime(2020, 1, 18, 12, 0, tzinfo=UTC)


def ev(i: int, etype: str, minutes: float) -> tuple[str, str, datetime]:
    return (str(i), etype, T0 + timedelta(minutes=minutes))


def test_full_lifecycle_writes_one_history_row_per_state_left() -> None:
    current, history = LC.replay(
        [
            ev(1, "Event::Welcome", 0),
            ev(2, "Event::LmiDownload", 1),
            ev(3, "Event::LmiConnected", 2),
            ev(4, "Event::LaunchStart", 12.5),
            ev(5, "Event::LaunchEnd", 14),
            ev(6, "Event::FulfillmentEnded", 74),
        ]
    )
    assert current is not None and current.state == "DONE"
    assert [(h.state, h.seconds) for h in history] == [
        ("ENTERING", 120),
        ("WAITING", 630),
        ("LAUNCHING", 90),
        ("TESTING", 3600),
    ]


def test_order_of_arrival_does_not_matter() -> None:
    events = [
        ev(1, "Event::Welcome", 0),
        ev(2, "Event::LmiConnected", 3),
        ev(3, "Event::LaunchStart", 9),
        ev(4, "Event::LaunchEnd", 10),
    ]
    expected = LC.replay(events)
    for seed in range(20):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert LC.replay(shuffled) == expected


def test_states_never_move_back_and_done_absorbs() -> None:
    current, history = LC.replay(
        [
            ev(1, "Event::LmiConnected", 0),
            ev(2, "Event::Welcome", 5),
            ev(3, "Event::FulfillmentEnded", 10),
            ev(4, "Event::LaunchStart", 20),
        ]
    )
    assert current is not None
    assert (current.state, current.at) == ("DONE", T0 + timedelta(minutes=10))
    assert [(h.state, h.seconds) for h in history] == [("WAITING", 600)]


def test_repeated_trigger_keeps_the_first_start() -> None:
    current, history = LC.replay([ev(1, "Event::LmiConnected", 0), ev(2, "Event::LmiConnected", 5)])
    assert current is not None and current.at == T0 and current.event_id == "1"
    assert history == []


def test_non_trigger_events_give_no_row() -> None:
    assert LC.replay([ev(1, "Event::LmiDownload", 0)]) == (None, [])


def test_durations_include_days_and_drop_fractions() -> None:
    start = T0
    assert whole_seconds(start, start + timedelta(days=2, seconds=5, microseconds=999_999)) == (
        2 * 86_400 + 5
    )
    _, history = LC.replay(
        [ev(1, "Event::Welcome", 0), ev(2, "Event::LmiConnected", 60 * 24 * 3 + 1)]
    )
    assert history[0].seconds == 3 * 86_400 + 60


def test_ties_in_time_break_by_numeric_id() -> None:
    at = T0
    assert order_key(at, "9") < order_key(at, "10")
    current, history = LC.replay([("10", "Event::LmiConnected", at), ("9", "Event::Welcome", at)])
    assert current is not None and current.state == "WAITING"
    assert [(h.state, h.seconds) for h in history] == [("ENTERING", 0)]


def test_config_is_data(tmp_path: Path) -> None:
    path = tmp_path / "lc.toml"
    path.write_text('states = ["A", "B"]\n[triggers]\n"x" = "A"\n"y" = "B"\n')
    current, _ = Lifecycle.load(path).replay([("1", "x", T0), ("2", "y", T0)])
    assert current is not None and current.state == "B"


def test_config_naming_an_unknown_state_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "lc.toml"
    path.write_text('states = ["A"]\n[triggers]\n"x" = "B"\n')
    with pytest.raises(ValueError, match="unknown states"):
        Lifecycle.load(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        ("states = [", "Invalid"),
        ('states = ["A"]\norder = "log"', 'order = "event_time"'),
    ],
)
def test_an_unusable_lifecycle_file_is_one_line_naming_its_setting(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "states.toml"
    if content is not None:
        path.write_text(content)
    settings = Settings("k:9092", "postgresql://x@h/db", fulfillment_lifecycle=str(path))
    with pytest.raises(SettingsError) as refused:
        build(settings, Codec())
    assert str(refused.value).startswith(f"DA_FULFILLMENT_LIFECYCLE={path}: ")
    assert reason in str(refused.value) and "\n" not in str(refused.value)
