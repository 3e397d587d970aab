"""``da parked``: what waits in the parking table, per DEP (count, oldest, what it waits for);
``da learning``: the class's live learning state, per student and per competency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import db, parking
from common.settings import Settings
from common.views.learning import overview

_PARKED = [
    Column("dep", "DEP"),
    Column("parked", "parked"),
    Column("waiting_for", "awaited things"),
    Column("oldest_parked_at", "oldest parked (UTC)"),
    Column("oldest_age_s", "age (s)"),
]


def parked(output: OutputOption = Format.TABLE) -> None:
    """Events parked by DEPs until what they need (content metadata, say) arrives."""
    from cli.main import load_settings

    found = parked_summary(load_settings())
    now = datetime.now(UTC)
    rows = [
        {
            "dep": r.owner,
            "parked": r.count,
            "waiting_for": r.waiting_for,
            "oldest_parked_at": r.oldest,
            "oldest_age_s": int((now - r.oldest).total_seconds()),
        }
        for r in found
    ]
    total = sum(r.count for r in found)
    report = Report([Table("deps", _PARKED, rows)], {"parked": ("parked", total)})
    typer.echo(render(report, output))


def parked_summary(settings: Settings) -> list[parking.ParkedSummary]:
    """What every DEP has parked, from every database (a DEP's rows live in its own)."""
    found = []
    for each in db.each_database(settings):
        with db.connect(each, autocommit=True) as conn:
            found += parking.summary(conn)
    return sorted(found, key=lambda s: s.owner)


def _pct(value: object) -> str:
    return f"{float(str(value)):.0f}%"


def _hours(ms: object) -> str:
    minutes = int(str(ms)) // 60_000
    return f"{minutes // 60}h{minutes % 60:02d}m"


_STUDENT_COLUMNS = [
    Column("student", "student"),
    Column("time_spent_ms", "time spent (h:m)", _hours),
    Column("views", "views"),
    Column("assessments_taken", "tests"),
    Column("avg_assessment_score", "avg test (%)", _pct),
    Column("avg_collection_score", "avg collection (%)", _pct),
]
_COMPETENCY_COLUMNS = [
    Column("competency", "competency"),
    Column("students", "students"),
    Column("attempts", "attempts"),
    Column("avg_latest_score", "avg latest (%)", _pct),
    Column("avg_best_score", "avg best (%)", _pct),
]


def report(settings: Settings, limit: int) -> Report:
    with db.Connections(settings) as dbs:
        found = overview(dbs, limit)
    return Report(
        [
            Table("students", _STUDENT_COLUMNS, found.students),
            Table("competencies", _COMPETENCY_COLUMNS, found.competencies),
        ],
        {
            "usage_des_applied": ("usage DEs applied", found.applied),
            "parked": ("parked", found.parked),
        },
    )


def learning(
    limit: Annotated[int, typer.Option(min=1, help="At most this many students.")] = 40,
    output: OutputOption = Format.TABLE,
) -> None:
    """Per student: time spent in collections and assessments, views, assessments taken, average
    latest scores; per competency: students, scored attempts, average latest and best score."""
    from cli.main import load_settings

    typer.echo(render(report(load_settings(), limit), output))


def register(app: typer.Typer) -> None:
    app.command("parked")(parked)
    app.command("learning")(learning)
