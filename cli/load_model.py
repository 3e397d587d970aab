"""How far an initial load (``da load``, ``common.loads``) has come, stage by stage.

The load's stages and topics come from the stage registry: every consuming stage that reads a
topic reachable from the ingest topic (through stages' outputs and dead-letter topics). A topic's
mark is its end offsets once every stage that writes it is done; a stage is done once it has
consumed every one of its load topics up to their marks (from the group's real offsets: the
stored ones of a store stage, the committed ones of the others). A topic written only by stages
that also read it (a feedback loop) has no writer to wait for and is left out. Marks are
recorded only when crossed, so a stage is never called done before it has read everything the
load put in front of it; live traffic written meanwhile only moves marks later, never earlier.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from common import stages
from common.loads import Key, Load
from common.status_model import StageSample
from common.topics import Topics


@dataclass(frozen=True)
class LoadGraph:
    stages: tuple[str, ...]  # stage names, registry order
    short: dict[str, str]  # stage name -> what people type
    inputs: dict[str, frozenset[str]]  # stage -> its input topics that the load reaches
    writers: dict[str, frozenset[str]]  # topic -> the load's stages that write it
    ingest: str


def graph(topics: Topics) -> LoadGraph:
    consuming = stages.consuming()
    reached, grown = {topics.ingest}, True
    while grown:
        grown = False
        for s in consuming:
            if reached.isdisjoint(s.input_topics(topics)):
                continue
            out = {*s.output_topics(topics), s.dead_letter_topic(topics)} - reached
            if out:
                reached |= out
                grown = True
    inputs = {s.name: frozenset(s.input_topics(topics)) & reached for s in consuming}
    part = [s for s in consuming if inputs[s.name]]
    writers = {
        t: frozenset(
            s.name
            for s in part
            if t in {*s.output_topics(topics), s.dead_letter_topic(topics)}
            and t not in inputs[s.name]
        )
        for t in reached
    }
    # A topic with no writer but the ones reading it: nothing to wait for (see the docstring).
    loops = {t for t, w in writers.items() if not w and t != topics.ingest}
    return LoadGraph(
        tuple(s.name for s in part),
        {s.name: s.short_name for s in part},
        {s.name: inputs[s.name] - loops for s in part},
        {t: w for t, w in writers.items() if t not in loops},
        topics.ingest,
    )


def _done(g: LoadGraph, stage: str, marks: dict[Key, int], sample: StageSample | None) -> bool:
    if sample is None or sample.error is not None:
        return False
    parts = [p for p in sample.partitions if p.topic in g.inputs[stage]]
    covered = {p.topic for p in parts}
    return covered == g.inputs[stage] and all(
        (p.topic, p.partition) in marks and p.position >= marks[(p.topic, p.partition)]
        for p in parts
    )


def crossed(
    g: LoadGraph,
    marks: dict[Key, int],
    samples: dict[str, StageSample],
    behind: set[str],
    ends_now: Callable[[str], dict[Key, int]],
) -> dict[Key, int]:
    """Marks to record now: the ends of each topic whose writers are all done, read by
    ``ends_now`` after the samples were taken (a sample's own ends may be older than a writer's
    offsets in it). ``behind``: stages whose emitted DEs may still wait in their outbox."""
    known, new = dict(marks), {}
    changed = True
    while changed:
        changed = False
        done = {s for s in g.stages if s not in behind and _done(g, s, known, samples.get(s))}
        for topic, writers in sorted(g.writers.items()):
            if topic == g.ingest or not writers or not writers <= done:
                continue
            if any(k[0] == topic for k in known):
                continue
            found = ends_now(topic)
            if found:
                known.update(found)
                new.update(found)
                changed = True
    return new


@dataclass(frozen=True, slots=True)
class StageLoad:
    stage: str  # what people type: gep, demux, or the DEP's name
    done: bool
    partitions_done: int
    partitions: int
    marked: bool  # every one of its load topics has its mark
    dep: bool = False  # a DEP (the summary counts the DEPs done or waiting)

    @property
    def state(self) -> str:
        return "done" if self.done else "waiting" if not self.marked else "loading"

    def label(self) -> str:
        if self.done:
            return f"{self.stage} done"
        if not self.marked:
            return f"{self.stage} waiting"
        return f"{self.stage} {self.partitions_done}/{self.partitions} partitions"


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """What ``da status`` and the web console's /status page show of the latest load."""

    load_id: int
    file: str
    events: int
    sent: int
    started_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    percent: int  # 0..100; 100 only when every stage is done
    eta_s: float | None
    stages: tuple[StageLoad, ...]

    @property
    def done(self) -> bool:
        return all(s.done for s in self.stages) and self.sent_at is not None

    def summary(self) -> str:
        """``initial load 87 %: gep done, demux done, fulfillment-state 4/6 partitions, 9 DEPs
        done, ETA 40 s``: each DEP in the middle of it by name, the others counted."""
        if self.done:
            return f"initial load done: {self.events:,} events of {self.file}"
        head = f"initial load {self.percent} %"
        if self.sent_at is None:
            head += f" (sending {self.sent:,}/{self.events:,})"
        parts = [s.label() for s in self.stages if not s.dep or s.state == "loading"]
        for state in ("done", "waiting"):
            n = sum(s.dep and s.state == state for s in self.stages)
            parts += [f"{n} DEP{'s' if n > 1 else ''} {state}"] if n else []
        eta = "" if self.eta_s is None else f", ETA {self.eta_s:,.0f} s"
        return f"{head}: {', '.join(parts)}{eta}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.load_id,
            "file": self.file,
            "events": self.events,
            "sent": self.sent,
            "started_at": self.started_at.isoformat(),
            "sent_at": None if self.sent_at is None else self.sent_at.isoformat(),
            "done_at": None if self.done_at is None else self.done_at.isoformat(),
            "done": self.done,
            "percent": self.percent,
            "eta_s": self.eta_s,
            "summary": self.summary(),
            "stages": [
                {
                    "stage": s.stage,
                    "done": s.done,
                    "partitions_done": s.partitions_done,
                    "partitions": s.partitions,
                    "state": s.state,
                }
                for s in self.stages
            ],
        }


def progress(
    g: LoadGraph,
    load: Load,
    marks: dict[Key, int],
    samples: dict[str, StageSample],
    behind: set[str],
    now: datetime,
) -> LoadProgress:
    """The load's progress given every mark recorded (``load.marks`` and those just crossed)."""
    sent_ratio = 1.0 if load.sent_at is not None else load.sent / max(load.events, 1)
    got_total = need_total = 0.0
    rows = []
    for name in g.stages:
        sample = samples.get(name)
        parts = (
            [] if sample is None else [p for p in sample.partitions if p.topic in g.inputs[name]]
        )
        done = name not in behind and _done(g, name, marks, sample)
        at_mark = 0
        for p in parts:
            key = (p.topic, p.partition)
            start = load.start.get(key, 0)
            if key in marks:
                target = float(marks[key])
                at_mark += p.position >= marks[key]
            else:  # not marked yet: what has arrived so far, scaled by the share sent
                target = start + (p.end - start) / max(sent_ratio, 0.01)
            need = max(0.0, target - start)
            got_total += min(need, max(0.0, p.position - start))
            need_total += need
        marked = bool(parts) and all((p.topic, p.partition) in marks for p in parts)
        dep = g.short[name] != name
        rows.append(StageLoad(g.short[name], done, at_mark, len(parts), marked, dep))
    if load.done_at is not None:  # done once: a later rewind (`da replay`) does not undo it
        rows = [replace(r, done=True, partitions_done=r.partitions, marked=True) for r in rows]
    finished = all(r.done for r in rows) and load.sent_at is not None
    share = got_total / need_total if need_total else 0.0
    percent = 100 if finished else min(99, math.floor(100 * share))
    elapsed = (now - load.started_at).total_seconds()
    eta = None
    if finished:
        eta = 0.0
    elif share > 0.01 and elapsed > 0:
        eta = elapsed * (1 - share) / share
    return LoadProgress(
        load.id,
        load.file,
        load.events,
        load.sent,
        load.started_at,
        load.sent_at,
        load.done_at,
        percent,
        eta,
        tuple(rows),
    )
