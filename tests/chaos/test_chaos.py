"""A small, seeded chaos run in the ordinary suite: every fault kind at least once (SIGKILL and
restart, scale out and in, broker restart, PostgreSQL restart) plus poison of every class at
every stage, OUS workflow commands among the events (20 OUSs, their final states equal to the
oracle's), and nothing lost, nothing doubled, exactly the poison dead-lettered (by stage and
reason). ``make chaos`` runs it large."""

from __future__ import annotations

from pathlib import Path

from common.names import dep_stage
from common.topics import Topics
from tests.chaos.driver import run
from tests.chaos.faults import KINDS
from tests.chaos.mixed import COMMANDS, DOMAINS, Mix
from tests.chaos.poison import targets
from tests.chaos.report import render


def test_small_seeded_chaos_run(tmp_path: Path) -> None:
    mix = Mix(fulfillments=700, students=80, units=2, lessons=2)
    # ~7,400 events: a poison every 120 sends each of the ~56 (class, topic) pairs once at least.
    report = run(
        tmp_path, 7, mix, rate=300, fault_every_s=2.5, min_faults=len(KINDS), poison_every=120
    )
    print(render(report))
    assert set(report.faults) == set(KINDS), report.faults
    assert report.raw_events["learning"] > 0.2 * sum(report.raw_events.values())
    running = [c[2] for c in COMMANDS.values() if c[0] == "dep"]
    every = targets(Topics("t"), running, 1_000_000)
    assert set(report.poison_kinds) == {p.kind for p in every}
    assert {due.split(": ")[0] for due in report.poison} == {"gep", "demux"} | {
        dep_stage(d) for d in running
    }
    # Whether a score parked in this small run depends on timing (a second's sampling, and
    # statistics a PostgreSQL restart can reset), so it is reported, not asserted: parking and
    # release are proven deterministically by tests/e2e/test_learning_pipeline.py (metadata held
    # back until every play of it) and tests/e2e/test_parked_expiry.py.
    print(f"scores parked: at most {report.most_parked} at once, {report.parked_ever} in all")
    for domain in DOMAINS:
        assert report.lost[domain] == report.duplicates[domain] == 0, render(report)
    # Dead letters by stage and reason: exactly the poison's, nothing else.
    assert report.dead_lettered == report.poison, render(report)
    assert report.table_problems == [] and report.topic_problems == [], render(report)
