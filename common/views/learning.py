"""A class's learning state, per student and per competency (``da learning`` and the console's
/learning page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from common import parking
from common.db import Connections

Conn = psycopg.Connection[tuple[Any, ...]]

_STUDENTS = """
SELECT m.user_id,
       -- a collection's time is its resources' and questions' (rolled up): count the top level
       coalesce(sum(m.time_spent_ms)
                FILTER (WHERE c.content_family IN ('collection', 'assessment')), 0),
       count(*) FILTER (WHERE c.content_family = 'assessment' AND m.latest_score IS NOT NULL),
       avg(m.latest_score) FILTER (WHERE c.content_family = 'assessment'),
       avg(m.latest_score) FILTER (WHERE c.content_family = 'collection'),
       sum(m.views)
FROM usage_metrics m LEFT JOIN content_catalog c USING (content_id)
GROUP BY m.user_id ORDER BY m.user_id LIMIT %s
"""
_COMPETENCIES = """
SELECT competency, count(*), sum(attempts), avg(latest_score), avg(best_score)
FROM competency_stats GROUP BY competency ORDER BY competency
"""


# The DEPs whose tables the overview reads (named here, as their tables are in the queries).
USAGE, CATALOG, STATS = "usage-metrics", "content-catalog", "competency-stats"


@dataclass(frozen=True)
class Overview:
    applied: int  # usage DEs applied
    parked: int
    students: list[dict[str, Any]]
    competencies: list[dict[str, Any]]


def _copy_families(usage: Conn, catalog: Conn) -> None:
    """The content catalog lives in another database: its families go into a temporary table of
    the same name on the usage connection (temporary tables come first on the search path), so
    one query joins them. Refreshed on every read: the catalog is small next to the usage rows."""
    rows = catalog.execute("SELECT content_id, content_family FROM content_catalog").fetchall()
    usage.execute(
        "CREATE TEMP TABLE IF NOT EXISTS content_catalog (content_id text, content_family text)"
    )
    usage.execute("TRUNCATE pg_temp.content_catalog")
    with usage.cursor().copy("COPY pg_temp.content_catalog FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def overview(dbs: Connections, limit: int) -> Overview:
    """From the learning DEPs' databases, wherever each lives; parked: every DEP's, in every
    database."""
    usage, catalog, stats = dbs.of(USAGE), dbs.of(CATALOG), dbs.of(STATS)
    if catalog is not usage:
        _copy_families(usage, catalog)
    applied = usage.execute("SELECT count(*) FROM usage_seen").fetchall()[0][0]
    students = usage.execute(_STUDENTS, (limit,)).fetchall()
    competencies = stats.execute(_COMPETENCIES).fetchall()
    waiting = sum(p.count for conn in dbs.every() for p in parking.summary(conn))
    return Overview(
        int(applied),
        waiting,
        [
            {
                "student": user,
                "time_spent_ms": spent,
                "views": views,
                "assessments_taken": done,
                "avg_assessment_score": assessed,
                "avg_collection_score": collected,
            }
            for user, spent, done, assessed, collected, views in students
        ],
        [
            {
                "competency": code,
                "students": n,
                "attempts": attempts,
                "avg_latest_score": latest,
                "avg_best_score": best,
            }
            for code, n, attempts, latest, best in competencies
        ],
    )
