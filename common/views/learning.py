"""A class's learning state, per student and per competency (``da learning`` and the console's
/learning page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from common import parking

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


@dataclass(frozen=True)
class Overview:
    applied: int  # usage DEs applied
    parked: int
    students: list[dict[str, Any]]
    competencies: list[dict[str, Any]]


def overview(
    conn: Conn, limit: int, *, parked: int | None = None, competencies_from: Conn | None = None
) -> Overview:
    """From ``conn`` (usage-metrics' database, content_catalog reachable there). A DEP kept in
    its own database is read by the caller: its parked count, competency-stats' connection."""
    applied = conn.execute("SELECT count(*) FROM usage_seen").fetchall()[0][0]
    students = conn.execute(_STUDENTS, (limit,)).fetchall()
    competencies = (competencies_from or conn).execute(_COMPETENCIES).fetchall()
    waiting = sum(p.count for p in parking.summary(conn)) if parked is None else parked
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
