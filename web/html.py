"""Small HTML helpers: every value shown goes through ``esc``."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def duration(seconds: float | None) -> str:
    """``1h02m03s``, ``4m05s`` or ``6s``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def number(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}{unit}" if x >= 10 or x == 0 else f"{x:.1f}{unit}"


def ms(at: datetime | None) -> int | None:
    """Epoch milliseconds, what the page's timers count from."""
    return None if at is None else int(at.timestamp() * 1000)


def clock_time(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table whose cells are already HTML (escaped by the caller)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def empty(text: str) -> str:
    return f'<p class="empty">{esc(text)}</p>'


def unavailable(what: str, why: str, command: str) -> str:
    """A section that could not be read, and what to run about it."""
    return (
        f'<div class="problem"><strong>{esc(what)} could not be read</strong>: {esc(why)}'
        f"<br>next: <code>{esc(command)}</code></div>"
    )
