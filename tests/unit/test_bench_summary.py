"""The benchmark's summary: repetitions folded into min / median / max and ratios to the ceiling
of the same repetition; the targets judged from them."""

from __future__ import annotations

from bench import summary
from bench.e2e import Latency
from bench.report import Figure
from common.settings import Settings

GEP = "GEP alone (ingest -> canonical)"


def _run(gep_rates: list[float], bare_rates: list[float]) -> summary.Run:
    run = summary.Run(Settings(kafka_bootstrap_servers="-", database_url="-"), 1000, 100, 10)
    for gep, bare in zip(gep_rates, bare_rates, strict=True):
        run.figures.append(
            [
                Figure(GEP, 1000, 1000 / gep, cpu_s=0.02, peak_rss_kib=100 * 1024),
                Figure("bare gep", 1000, 1000 / bare, cpu_s=0.01, peak_rss_kib=90 * 1024),
            ]
        )
    return run


def test_the_ratio_is_the_median_of_each_repetitions_own_ratio() -> None:
    # A loaded second repetition slows both: its own ratio, not the medians', is what counts.
    rows = {r.name: r for r in summary.rows(_run([900.0, 300.0, 950.0], [1000.0, 400.0, 1000.0]))}
    assert rows[GEP].ratio == 0.9
    assert sorted(rows[GEP].rates) == [300.0, 900.0, 950.0]
    assert rows[GEP].cpu_us == 20.0
    assert rows["bare gep"].ratio is None  # no passthrough in this run


def test_targets_name_what_is_missed() -> None:
    run = _run([800.0], [1000.0])
    run.latency = Latency(5000.0, 4990.0, 1000, 120.0, 640.0, 700.0, 25.0)
    verdicts = {goal: ok for goal, _, ok in summary.targets(run)}
    assert verdicts[f"{GEP} >= 0.9 of bare gep"] is False
    assert verdicts["p99 <= 500 ms at 5,000/s"] is False
    assert verdicts["<= 150 MiB RSS per stage"] is True
    assert "MISSED: " + f"{GEP} >= 0.9 of bare gep: 0.80" in summary.text(run)


def test_the_dep_is_judged_against_both_of_its_ceilings() -> None:
    run = _run([900.0], [1000.0])
    run.figures[0] += [
        Figure(summary.DEP, 1000, 1000 / 300.0),
        Figure("bare dep (3 tables)", 1000, 1000 / 400.0),
        Figure("bare dep", 1000, 1000 / 600.0),
    ]
    rows = {r.name: r for r in summary.rows(run)}
    assert rows[summary.DEP].ratio == 0.75  # the table's ratio: like with like
    assert rows["bare dep (3 tables)"].ratio == 400.0 / 600.0
    verdicts = {goal: (got, ok) for goal, got, ok in summary.targets(run)}
    assert verdicts[f"{summary.DEP} >= 0.7 of bare dep (3 tables)"] == ("0.75", True)
    assert verdicts[f"{summary.DEP} >= 0.7 of bare dep"] == ("0.50", False)


def test_a_learning_dep_is_held_to_the_bare_copy_of_its_des() -> None:
    run = _run([900.0], [1000.0])
    dep = summary.learning_dep("usage-metrics")
    run.figures[0] += [
        Figure(dep, 500, 500 / 200.0),
        Figure(summary.learning_ceiling("usage-metrics"), 500, 500 / 800.0),
    ]
    rows = {r.name: r for r in summary.rows(run)}
    assert rows[dep].ratio == 0.25
    assert summary.ceiling_of(dep) == summary.learning_ceiling("usage-metrics")
    assert summary.ceiling_of(summary.learning_ceiling("usage-metrics")) == ""
