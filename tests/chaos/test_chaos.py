"""A small, seeded chaos run in the ordinary suite: every fault kind at least once (SIGKILL and
restart, scale out and in, broker restart, PostgreSQL restart) plus poison for every stage, and
nothing lost, nothing doubled, exactly the poison dead-lettered. ``make chaos`` runs it large."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.driver import render, run
from tests.chaos.faults import KINDS


def test_small_seeded_chaos_run(tmp_path: Path) -> None:
    report = run(
        tmp_path, seed=7, fulfillments=700, rate=300, fault_every_s=2.5, min_faults=len(KINDS)
    )
    print(render(report))
    assert set(report.faults) == set(KINDS), report.faults
    assert sum(report.poison.values()) >= 3
    assert report.lost == 0 and report.duplicates == 0, render(report)
    assert report.dead_lettered == report.poison, render(report)
    assert report.table_problems == [], render(report)
