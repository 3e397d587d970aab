"""The page around the sections: navigation, where each section goes, and the data the page's
script starts from (so the first paint needs no request beyond the page and its static files)."""

from __future__ import annotations

import json

from web.html import esc
from web.pages.base import Page

NAV = (
    ("fulfillments", "Wait-time board"),
    ("status", "Pipeline status"),
    ("workflow", "OUS workflow"),
    ("learning", "Class"),
)

HERE = ' class="here"'

# (section id, heading); "chart:<id>" is a chart drawn by the page's script.
LAYOUT: dict[str, list[tuple[str, str]]] = {
    "fulfillments": [
        ("banner", ""),
        ("counts", "Test takers per state"),
        ("waiting", "Waiting longest right now"),
        ("distribution", "How long those waiting have waited"),
        ("chart:time_in_state", "Average time in each state left, last hour (10-second bins)"),
        ("quantiles", "Time in each state left, last hour"),
    ],
    "status": [
        ("banner", ""),
        ("load", ""),
        ("stages", "Every consuming stage"),
        ("errors", "Last dead letters"),
    ],
    "workflow": [
        ("columns", "OUSs per state, and the one waiting longest"),
        ("rejections", "Commands refused in the last hour"),
    ],
    "learning": [
        ("summary", ""),
        ("students", "Per student"),
        ("competencies", "Per competency"),
    ],
}


def render(name: str, page: Page | None) -> str:
    sections = page.sections if page is not None else {}
    parts = []
    for section, heading in LAYOUT[name]:
        title = f"<h2>{esc(heading)}</h2>" if heading else ""
        if section.startswith("chart:"):
            chart = section.removeprefix("chart:")
            parts.append(f'<section>{title}<div class="chart" id="chart-{esc(chart)}"></div>')
            parts.append("</section>")
        else:
            body = sections.get(section, "")
            parts.append(f'<section>{title}<div data-section="{esc(section)}">{body}</div>')
            parts.append("</section>")
    for extra in set(sections) - {s for s, _ in LAYOUT[name]} - {"clock"}:  # a table unread
        parts.insert(0, f'<div data-section="{esc(extra)}">{sections[extra]}</div>')
    start = {
        "page": name,
        "charts": page.charts if page else {},
        "now_ms": page.now_ms if page else 0,
        "tick": page.tick if page else False,
    }
    data = json.dumps(start).replace("</", "<\\/")  # never ends the script element early
    nav = "".join(f'<a href="/{p}"{HERE if p == name else ""}>{esc(label)}</a>' for p, label in NAV)
    title = page.title if page is not None else name
    foot = sections.get("clock", "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · da</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/static/console.css">
</head><body data-page="{esc(name)}">
<header><span class="brand">da</span><nav>{nav}</nav>
<span id="live" class="live">live</span></header>
<main><h1>{esc(title)}</h1>{"".join(parts)}
<footer data-section="clock">{foot}</footer></main>
<script id="page-data" type="application/json">{data}</script>
<script src="/static/vendor/uPlot.iife.min.js"></script>
<script src="/static/console.js"></script>
</body></html>
"""
