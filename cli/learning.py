"""``da parked``: what waits in the parking table, per DEP (count, oldest, what it waits for);
``da learning``: the class's live learning state, per student and per competency."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Annotated

import psycopg
import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import db, parking
from common.settings import Settings
from common.views.learning import overview
from dep import competency_stats, content_catalog, usage_metrics

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


def _copy_families(settings: Settings, usage: psycopg.Connection[tuple[object, ...]]) -> None:
    """The content catalog lives in another database: its families go into a temporary table of
    the same name on the usage connection (temporary tables come first on the search path), so
    one query joins them."""
    with db.connect(settings, autocommit=True, dep=content_catalog.SPEC.name) as conn:
        rows = conn.execute("SELECT content_id, content_family FROM content_catalog").fetchall()
    usage.execute("CREATE TEMP TABLE content_catalog (content_id text, content_family text)")
    with usage.cursor().copy("COPY content_catalog FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def report(settings: Settings, limit: int) -> Report:
    usage, catalog, stats = (
        usage_metrics.SPEC.name,
        content_catalog.SPEC.name,
        competency_stats.SPEC.name,
    )
    parked_count = sum(p.count for p in parked_summary(settings))
    with db.connect(settings, autocommit=True, dep=usage) as conn:
        if settings.database_url_for(catalog) != settings.database_url_for(usage):
            _copy_families(settings, conn)
        # competency-stats may keep its tables in a database of its own.
        apart = settings.database_url_for(stats) != settings.database_url_for(usage)
        with db.connect(settings, autocommit=True, dep=stats) if apart else nullcontext() as other:
            found = overview(conn, limit, parked=parked_count, competencies_from=other)
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
