"""The rows ``da status`` prints and the web console's /status page shows: each consuming
stage's verdict, rate, ETA and the command to run next, from samples of its partitions (two a
few seconds apart, and one about a minute old when there is one)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from common import stages
from common.stages import Stage
from common.status_model import Judgement, Partition, StageSample, eta_s, judge, next_command, rate
from common.status_read import Details

KEEP_S = 120.0
MINUTE_S = 60.0
# (time.time() of a sample, the sample of every consuming stage), oldest first.
Sampled = tuple[float, dict[str, StageSample]]
History = list[Sampled]


def minute_ago(history: History, now: float) -> Sampled | None:
    """The sample closest to a minute old, from the last two minutes."""
    old = [(t, s) for t, s in history if now - t <= KEEP_S and now - t >= 1.0]
    return min(old, key=lambda e: abs(now - e[0] - MINUTE_S), default=None)


def last_moved(history: History, name: str) -> str | None:
    moved = None
    for (_, a), (t, b) in itertools.pairwise(history):
        if name in a and name in b and b[name].processed > a[name].processed:
            moved = t
    return None if moved is None else datetime.fromtimestamp(moved, UTC).isoformat()


def rows(
    before: Sampled,
    now: Sampled,
    past: Sampled | None,
    history: History,
    details: Callable[[Stage, StageSample], Details | None],
) -> list[dict[str, Any]]:
    """One row per consuming stage (the registry's order). ``past`` is the sample about a minute
    old (``minute_ago``); ``history`` tells when offsets last moved where no commit time is
    kept; ``details`` gives the slower facts (dead letters, parked, time behind)."""
    (t0, first), (t1, last) = before, now
    out = []
    for stage in stages.consuming():
        name = stage.name
        old = past[1].get(name) if past else None
        j = judge(first[name], last[name], old)
        per_s = rate(last[name], t1, old, past[0]) if past and old else None
        per_s = per_s if per_s is not None else rate(last[name], t1, first[name], t0)
        found = details(stage, last[name]) if last[name].error is None else None
        row = _row(stage.short_name, last[name], j, per_s, found)
        if row["last_commit"] is None:  # no commit time kept: when its offsets last moved
            row["last_commit"] = last_moved(history, name)
        out.append(row)
    return out


def _row(
    name: str, s: StageSample, j: Judgement, per_s: float | None, d: Details | None
) -> dict[str, Any]:
    worst = sorted(s.partitions, key=lambda p: -p.lag)
    return {
        "stage": name,
        "verdict": j.verdict,
        "why": j.why,
        "instances": [{"client_id": m.client_id, "host": m.host} for m in s.members],
        "processed": s.processed,
        "outstanding": s.lag,
        "behind_s": None if d is None else d.behind_s,
        "rate_per_s": per_s,
        "eta_s": eta_s(s.lag, per_s, j.verdict),
        "dead_letters": {} if d is None else d.dead_letters,
        "parked": None if d is None else d.parked,
        "last_commit": None if d is None or d.last_commit is None else d.last_commit.isoformat(),
        "next": next_command(name, j, s),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "end": p.end,
                "committed": p.committed,
                "stored": p.stored,
                "lag": p.lag,
                "owner": _owner(s, p),
            }
            for p in worst
        ],
    }


def _owner(s: StageSample, p: Partition) -> str | None:
    m = s.owner(p.topic, p.partition)
    return None if m is None else f"{m.client_id}@{m.host}"
