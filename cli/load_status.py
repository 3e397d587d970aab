"""The latest initial load's progress, read like ``da status`` reads the stages (Kafka and
PostgreSQL, never the stages), recording the marks it finds crossed (``common.loads``).

``initial_load(reader)`` is what ``da status``, ``da load`` and the web console's /status page
call: ``None`` when no load was ever made, else a ``cli.load_model.LoadProgress``
(``.to_json()`` is the ``initial_load`` field of ``da status -o json``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from confluent_kafka import KafkaException

from cli.load_model import LoadProgress, crossed, graph, progress
from common import loads, stages
from common.status_model import StageSample
from common.status_read import Reader
from common.topics import Topics


def initial_load(
    reader: Reader, samples: dict[str, StageSample] | None = None
) -> LoadProgress | None:
    """The latest load's progress. ``samples``: a reading of the stages (one is taken when not
    given); an older reading only makes the judgement later, never early."""
    conn = reader.db()
    load = loads.latest(conn)
    if load is None:
        return None
    if samples is None:
        samples = reader.sample()
    # Any outbox row older than now holds what a stage emitted before its offsets were read
    # (each DEP's outbox is in its own database, read by that database's clock).
    owners: dict[int, set[str]] = {}
    behind = set()
    for s in stages.consuming():
        if s.owner is None:
            continue
        dep_conn = reader.db(s)
        if id(dep_conn) not in owners:
            owners[id(dep_conn)] = loads.outbox_behind(dep_conn, loads.db_now(dep_conn))
        if s.owner in owners[id(dep_conn)]:
            behind.add(s.name)
    g = graph(Topics(reader.settings.namespace))
    marks = dict(load.marks)
    if load.sent_at is not None and load.done_at is None:
        new = crossed(g, marks, samples, behind, reader.topic_ends)
        marks.update(new)
        result = progress(g, load, marks, samples, behind, loads.db_now(conn))
        if new or result.done:
            loads.mark(conn, load.id, new, result.done)
        return result
    return progress(g, load, marks, samples, behind, loads.db_now(conn))


def load_json(reader: Reader, samples: dict[str, StageSample]) -> dict[str, Any] | None:
    """``initial_load`` of ``da status -o json``; None when there was no load or it could not
    be read (the stages' rows say why)."""
    try:
        found = initial_load(reader, samples)
    except (KafkaException, psycopg.Error, TimeoutError):
        return None
    return None if found is None else found.to_json()
