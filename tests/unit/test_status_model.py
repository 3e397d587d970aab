"""``da status``'s verdicts from samples (no services: the samples are built here)."""

from __future__ import annotations

from common.status_model import (
    Member,
    Partition,
    StageSample,
    eta_s,
    judge,
    next_command,
    overall_exit,
)


def sample(positions: list[int], ends: list[int], *, members: int = 1, store: bool = False,
           committed: list[int] | None = None) -> StageSample:  # fmt: skip
    parts = tuple(
        Partition(
            "in",
            i,
            end,
            (committed or positions)[i] if not store or committed else None,
            pos if store else None,
            store,
        )
        for i, (pos, end) in enumerate(zip(positions, ends, strict=True))
    )
    owners = tuple(
        Member(
            f"dep-{m}:4{m}", f"10.0.0.{m}", tuple(("in", i) for i in range(m, len(parts), members))
        )
        for m in range(members)
    )
    return StageSample("dep.x", parts, owners)


def test_lag_zero_is_ok_and_no_members_is_stopped() -> None:
    assert judge(sample([5, 5], [5, 5]), sample([5, 5], [5, 5]), None).verdict == "OK"
    gone = sample([5, 5], [9, 9], members=0)
    assert judge(gone, gone, None).verdict == "STOPPED"


def test_moving_and_falling_is_catching_up_with_an_eta() -> None:
    j = judge(sample([0, 0], [100, 100]), sample([20, 20], [100, 100]), None)
    assert j.verdict == "CATCHING_UP"
    assert eta_s(160, 10.0, j.verdict) == 16.0


def test_moving_but_not_falling_is_slow() -> None:
    j = judge(sample([0, 0], [100, 100]), sample([10, 10], [130, 130]), None)
    assert j.verdict == "SLOW"


def test_no_commit_with_lag_is_stalled_and_names_the_owner() -> None:
    still = sample([10, 10], [100, 100], members=2)
    j = judge(still, still, None)
    assert j.verdict == "STALLED"
    assert "dep-0:40 on 10.0.0.0" in (next_command("x", j, still) or "")


def test_one_stuck_instance_among_moving_ones_is_stalled() -> None:
    before = sample([10, 10], [100, 100], members=2)
    now = sample([10, 50], [100, 100], members=2)
    j = judge(before, now, None)
    assert j.verdict == "STALLED" and "dep-0:40" in j.why


def test_stored_offsets_behind_kafkas_read_rewind_even_when_stopped() -> None:
    rewound = sample([0, 0], [50, 50], members=0, store=True, committed=[50, 50])
    assert judge(rewound, rewound, None).verdict == "REWIND"
    before, now = sample([40, 40], [50, 50]), sample([0, 0], [50, 50])
    assert judge(before, now, None).verdict == "REWIND"


def test_unknown_and_the_exit_status() -> None:
    broken = StageSample("dep.x", (), (), error="Kafka: all brokers down")
    assert judge(broken, broken, None).verdict == "UNKNOWN"
    assert overall_exit(["OK", "CATCHING_UP"]) == 1
    assert overall_exit(["OK", "UNKNOWN", "STALLED"]) == 2
    assert overall_exit(["OK", "UNKNOWN"]) == 3
    assert overall_exit(["OK"]) == 0
