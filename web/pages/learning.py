"""/learning: the class overview ``da learning`` prints, per student and per competency."""

from __future__ import annotations

from common.views.learning import overview
from web.html import empty, esc, number, table
from web.pages.base import Context, Page

STUDENTS = 200


def _pct(x: object) -> str:
    return "-" if x is None else f"{float(str(x)):.0f}%"


def _hours(ms_spent: object) -> str:
    minutes = int(str(ms_spent or 0)) // 60_000
    return f"{minutes // 60}h{minutes % 60:02d}m"


def build(ctx: Context) -> Page:
    found = overview(ctx.dbs, STUDENTS)
    students = [
        [
            esc(s["student"]),
            _hours(s["time_spent_ms"]),
            esc(number(s["views"])),
            esc(number(s["assessments_taken"])),
            _pct(s["avg_assessment_score"]),
            _pct(s["avg_collection_score"]),
        ]
        for s in found.students
    ]
    competencies = [
        [
            esc(c["competency"]),
            esc(number(c["students"])),
            esc(number(c["attempts"])),
            _pct(c["avg_latest_score"]),
            _pct(c["avg_best_score"]),
        ]
        for c in found.competencies
    ]
    head = ["student", "time spent (h:m)", "views", "tests", "avg test", "avg collection"]
    sections = {
        "summary": f"{found.applied:,} usage DEs applied · {found.parked:,} parked",
        "students": table(head, students) if students else empty("No learning activity yet."),
        "competencies": table(
            ["competency", "students", "attempts", "avg latest", "avg best"], competencies
        )
        if competencies
        else empty("No competency scored yet."),
    }
    return Page("Class overview", sections)
