"""``da parked``: what waits in the parking table, per DEP (count, oldest, what it waits for);
``da learning``: the class's live learning state, per student and per competency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from common import db, parking
from common.settings import Settings


def parked() -> None:
    """Events parked by DEPs until what they need (content metadata, say) arrives."""
    from cli.main import load_settings

    settings = load_settings()
    with db.connect(settings, autocommit=True) as conn:
        rows = parking.summary(conn)
    if not rows:
        typer.echo("parked: none")
        return
    now = datetime.now(UTC)
    for r in rows:
        age = int((now - r.oldest).total_seconds())
        typer.echo(
            f"{r.owner}: {r.count} parked, waiting for {r.waiting_for} thing(s); "
            f"oldest parked {r.oldest:%Y-%m-%d %H:%M:%S} UTC ({age}s ago)"
        )


_STUDENTS = """
SELECT m.user_id,
       -- a collection's time is its resources' and questions' (rolled up): count the top level
       coalesce(sum(m.time_spent_ms) FILTER (WHERE c.content_type IN ('collection', 'assessment')),
                0),
       count(*) FILTER (WHERE c.content_type = 'assessment' AND m.latest_score IS NOT NULL),
       avg(m.latest_score) FILTER (WHERE c.content_type = 'assessment'),
       avg(m.latest_score) FILTER (WHERE c.content_type = 'collection'),
       sum(m.views)
FROM usage_metrics m LEFT JOIN content_catalog c USING (content_id)
GROUP BY m.user_id ORDER BY m.user_id LIMIT %s
"""
_COMPETENCIES = """
SELECT competency, count(*), sum(attempts), avg(latest_score), avg(best_score)
FROM competency_stats GROUP BY competency ORDER BY competency
"""


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.0f}%"


def render(settings: Settings, limit: int) -> str:
    with db.connect(settings, autocommit=True) as conn:
        applied = conn.execute("SELECT count(*) FROM usage_seen").fetchall()[0][0]
        students = conn.execute(_STUDENTS, (limit,)).fetchall()
        competencies = conn.execute(_COMPETENCIES).fetchall()
        waiting = sum(p.count for p in parking.summary(conn))
    lines = [
        f"usage DEs applied: {applied}   parked: {waiting}",
        "",
        "student         time spent  views  tests  avg test  avg collection",
    ]
    for user, spent, done, assessed, collected, views in students:
        minutes = int(str(spent)) // 60_000
        lines.append(
            f"{user!s:<15} {minutes // 60:>6}h{minutes % 60:02d}m {views!s:>6} {done!s:>6} "
            f"{_pct(assessed):>9} {_pct(collected):>15}"
        )
    lines += ["", "competency      students  attempts  avg latest  avg best"]
    for code, n, attempts, latest, best in competencies:
        lines.append(f"{code!s:<15} {n!s:>8} {attempts!s:>9} {_pct(latest):>11} {_pct(best):>9}")
    return "\n".join(lines)


def learning(
    limit: Annotated[int, typer.Option(min=1, help="At most this many students.")] = 40,
) -> None:
    """Per student: time spent in collections and assessments, views, assessments taken, average
    latest scores; per competency: students, scored attempts, average latest and best score."""
    from cli.main import load_settings

    typer.echo(render(load_settings(), limit))


def register(app: typer.Typer) -> None:
    app.command("parked")(parked)
    app.command("learning")(learning)
