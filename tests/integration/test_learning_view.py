"""``da learning`` and the console's /learning page: the class's state as the learning DEPs left
it, per student and competency, wherever each DEP keeps its tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from cli.learning import report
from cli.output import Format, render
from common import db
from common.settings import Settings, dep_variable_name
from common.views.learning import CATALOG, STATS, USAGE
from dep import competency_stats, content_catalog, registry, usage_metrics
from web.pages import learning
from web.pages.base import Context
from web.status_feed import StatusView

# Which learning DEPs keep their tables in a second PostgreSQL cluster.
LAYOUTS = {"shared": (), "catalog-and-stats-apart": (CATALOG, STATS), "usage-apart": (USAGE,)}


@pytest.fixture(params=list(LAYOUTS))
def split(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    apart = LAYOUTS[request.param]
    if not apart:
        yield settings
        return
    second = request.getfixturevalue("second_database_url")
    schema = sql.Identifier(settings.database_schema)
    with psycopg.connect(second, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    yield replace(settings, dep_database_urls=tuple((dep_variable_name(n), second) for n in apart))
    with psycopg.connect(second, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


def test_the_overview_names_the_learning_deps_of_the_registry() -> None:
    assert (
        usage_metrics.SPEC.name,
        content_catalog.SPEC.name,
        competency_stats.SPEC.name,
    ) == (USAGE, CATALOG, STATS)


def test_time_counts_the_top_level_only_and_scores_are_averaged(split: Settings) -> None:
    settings = split
    db.migrate(settings, registry.all_migrations())
    with db.connect(settings, dep=CATALOG) as conn:
        conn.execute(
            "INSERT INTO content_catalog (content_id, content_type, content_family, changed_at, "
            "event_id) VALUES ('c1', 'collection', 'collection', now(), 'e1'), "
            "('a1', 'assessment-external', 'assessment', now(), 'e2'), "
            "('r1', 'resource', 'resource', now(), 'e3')"
        )
        conn.commit()
    with db.connect(settings, dep=USAGE) as conn:
        conn.execute(
            "INSERT INTO usage_metrics (user_id, content_id, class_id, course_id, unit_id, "
            "lesson_id, time_spent_ms, views, latest_score) VALUES "
            "('u1', 'c1', 'k', '', '', '', 600000, 1, 50), "
            "('u1', 'r1', 'k', '', '', '', 600000, 0, NULL), "  # inside c1's time already
            "('u1', 'a1', 'k', '', '', '', 4200000, 1, 80), "
            "('u2', 'a1', 'k', '', '', '', 60000, 1, 40)"
        )
        conn.commit()
    with db.connect(settings, dep=STATS) as conn:
        conn.execute(
            "INSERT INTO competency_stats (user_id, competency, attempts, latest_score, "
            "best_score) VALUES ('u1', 'K1', 2, 50, 90), ('u2', 'K1', 1, 70, 70)"
        )
        conn.commit()
    found = report(settings, limit=10)
    lines = render(found, Format.TABLE).splitlines()
    assert lines[0] == "usage DEs applied: 0   parked: 0"
    assert lines[3].split() == ["u1", "1h20m", "2", "1", "80%", "50%"]
    assert lines[4].split() == ["u2", "0h01m", "1", "1", "40%", "-"]
    assert lines[-1].split() == ["K1", "2", "3", "60%", "80%"]
    doc = json.loads(render(found, Format.JSON))
    assert doc["students"][0] == {
        "student": "u1",
        "time_spent_ms": 4800000,
        "views": 2,
        "assessments_taken": 1,
        "avg_assessment_score": 80.0,
        "avg_collection_score": 50.0,
    }
    assert doc["students"][1]["avg_collection_score"] is None
    assert doc["competencies"] == [
        {
            "competency": "K1",
            "students": 2,
            "attempts": 3,
            "avg_latest_score": 60.0,
            "avg_best_score": 80.0,
        }
    ]
    # The console's page reads the same, through its own connections.
    with db.Connections(settings) as dbs:
        page = learning.build(Context(dbs, settings, datetime.now(UTC), StatusView(), []))
    assert "u1" in page.sections["students"] and "1h20m" in page.sections["students"]
    assert "K1" in page.sections["competencies"] and "80%" in page.sections["competencies"]
