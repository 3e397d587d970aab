"""The learning pipeline's outputs compared with ``tests.learning_oracle``: every learning table
and every learning DE topic (demux's and the roll-up's), read committed. Shared by the learning
end-to-end test and the chaos run; each comparison returns the differences (empty when equal).

A message keyed ``poison`` on a DE topic is the chaos run's, meant for a DEP's dead-letter topic:
it is read past, never compared.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

from cli.schemas import codec_for
from common import db
from common.codec import Codec
from common.epoch import to_ms
from common.events import SystemEvent, UsageEvent
from common.settings import Settings
from common.topics import Topics
from tests.kafka_read import read_topic
from tests.learning_des import De, SysDe
from tests.learning_oracle import Expected

POISON_KEY = b"poison"
LATE = ("asmt-1-1", "coll-2-1")  # their metadata is held back until after every play of them
RETAG: dict[str, Any] = {  # the teacher retags an assessment the class took: the stats follow
    "format": "gooru.system",
    "key": "asmt-2-1",
    "value": {
        "eventId": "sys-retag",
        "eventName": "content.updated",
        "timestamp": 1600300000000,
        "actorId": "teacher-1",
        "data": {
            "id": "asmt-2-1",
            "contentType": "offline-activity",
            "competencies": ["MA.4.NF.3"],
        },
    },
}
TABLES = {  # the oracle's name for a table -> (how many leading columns are the key, query)
    "catalog": (1, "SELECT content_id, content_type, content_family, parent_id, competencies, "
                   "deleted FROM content_catalog"),
    "usage": (6, "SELECT user_id, content_id, class_id, course_id, unit_id, lesson_id, "
                 "time_spent_ms, views, starts, latest_score, best_score, latest_reaction "
                 "FROM usage_metrics"),
    "competency": (2, "SELECT user_id, competency, attempts, latest_score, best_score "
                      "FROM competency_stats"),
}  # fmt: skip


def held_back(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a sample into the lines sent first and the metadata sent after them all: the
    ``LATE`` content's, and ``RETAG``."""
    held = [r for r in lines if r["format"] == "gooru.system" and r["key"] in LATE]
    return [r for r in lines if r not in held], [*held, RETAG]


def waiting_for_late(want: Expected) -> int:
    """How many scores must be parked while the held-back content's metadata is missing."""
    scores = [*want.demux["assessment.score"], *want.rollup["collection.score"]]
    return len({(d.root, d.name) for d in scores if d.content in LATE})


def parked(settings: Settings) -> int:
    with db.connect(settings, autocommit=True) as conn:
        return int(str(conn.execute("SELECT count(*) FROM da_parked").fetchall()[0][0]))


def parked_ever(settings: Settings) -> int:
    """Rows ever inserted into the parking table, from PostgreSQL's statistics: a score that
    parked and was released between two looks of a sampler is still seen here."""
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables "
            "WHERE relname = 'da_parked' AND schemaname = %s",
            (settings.database_schema,),
        ).fetchone()
    return int(str(row[0])) if row else 0


def check_tables(settings: Settings, want: Expected) -> list[str]:
    """Differences between every learning table and the oracle (empty when equal)."""
    waiting = parked(settings)
    problems = [f"{waiting} still parked"] if waiting else []
    with db.connect(settings, autocommit=True) as conn:
        for name, (width, query) in TABLES.items():
            got = {
                (r[0] if width == 1 else tuple(r[:width])): tuple(r[width:])
                for r in conn.execute(query)
            }
            want_rows = getattr(want, name)
            bad = sorted(
                k
                for k in got.keys() | want_rows.keys()
                if _row(got.get(k)) != _row(want_rows.get(k))
            )
            if bad:
                problems.append(
                    f"{name}: {len(bad)} differ, e.g. {bad[0]}: "
                    f"table {got.get(bad[0])} oracle {want_rows.get(bad[0])}"
                )
    return problems


def _row(r: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    return None if r is None else tuple(round(v, 6) if isinstance(v, float) else v for v in r)


@dataclass
class TopicCheck:
    """``lost``/``duplicates``: DEs on demux's topics missing or beyond the oracle's count."""

    problems: list[str] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0
    des: int = 0  # DEs read from demux's learning topics


def check_topics(
    settings: Settings, want: Expected, poison: Counter[str] | None = None
) -> TopicCheck:
    """Every learning DE topic against the oracle. ``poison``: topic -> poison messages on it
    (read past, but counted in when waiting for a topic to be complete)."""
    topics, out = Topics(settings.namespace), TopicCheck()
    extra = poison or Counter()

    def read(topic: str, expect: int) -> list[Any]:
        got = read_topic(settings, topic, expect=expect + extra[topic], linger_s=0.5)
        return [m for m in got if m.key() != POISON_KEY]

    # The registry framing's client holds connections: closed when the check is done.
    with closing(codec_for(settings)) as codec:
        for bucket, des in want.demux.items():
            decoded = [
                UsageEvent.decode(codec, m.value())
                for m in read(topics.sink_bucket("demux", bucket), des.total())
            ]
            _count(out, bucket, Counter(_usage(d) for d in decoded), des)
            if {(d.lineage.stages, d.lineage.hops) for d in decoded} != {(("gep", "demux"), 1)}:
                out.problems.append(f"{bucket}: lineage other than gep -> demux")
        for bucket, sys_des in want.system.items():
            got = read(topics.sink_bucket("demux", bucket), sys_des.total())
            decoded_sys = Counter(_system(SystemEvent.decode(codec, m.value())) for m in got)
            _count(out, bucket, decoded_sys, sys_des)
        for bucket, up in want.rollup.items():
            got = read(topics.sink_bucket("dep", bucket), len(up))
            out.problems += _rollup_problems(bucket, got, want, up, codec)
        return out


def _count(out: TopicCheck, bucket: str, got: Counter[Any], want: Counter[Any]) -> None:
    lost, extra = sum((want - got).values()), sum((got - want).values())
    out.des += got.total()
    out.lost += lost
    out.duplicates += extra
    if lost or extra:
        out.problems.append(f"demux {bucket}: {lost} DEs missing, {extra} beyond the oracle")


def _rollup_problems(
    bucket: str, got: list[Any], want: Expected, up: set[De], codec: Codec
) -> list[str]:
    decoded = [UsageEvent.decode(codec, m.value()) for m in got]
    # The relay is at least once (downstream dedupes by identity): a repeat is the same bytes.
    if len({m.value() for m in got}) != len({d.identity for d in decoded}):
        return [f"dep {bucket}: a repeated DE differs from the first"]
    if {d.lineage.stages[-1] for d in decoded} != {"dep.collection-rollup"}:
        return [f"dep {bucket}: a DE not from the roll-up"]
    if bucket != "collection.score":
        return [] if {_usage(d) for d in decoded} == up else [f"dep {bucket}: DEs differ"]
    # the running mean of a session depends on arrival order: values checked per session
    if {replace(_usage(d), value=-1, at_ms=0) for d in decoded} != up:
        return [f"dep {bucket}: DEs differ"]
    sessions: dict[tuple[Any, ...], list[UsageEvent]] = {}
    for d in {d.lineage.root_event_id: d for d in decoded}.values():
        sessions.setdefault((d.user_id, d.content_id, d.context, d.session_id), []).append(d)
    if len(sessions) != len(want.rollup_sessions):
        return [f"dep {bucket}: {len(sessions)} sessions, oracle {len(want.rollup_sessions)}"]
    for key, ds in sessions.items():
        n, mean = want.rollup_sessions[key]
        if sorted(d.basis for d in ds) != list(range(1, n + 1)):
            return [f"dep {bucket}: session {key} has bases {sorted(d.basis for d in ds)}"]
        if round(max(ds, key=lambda d: d.basis).value, 6) != round(mean, 6):
            return [f"dep {bucket}: session {key}'s final mean is not {mean}"]
    return []


def _usage(de: UsageEvent) -> De:
    return De(
        de.name,
        de.lineage.root_event_id,
        de.user_id,
        de.content_id,
        de.value,
        to_ms(de.occurred_at),
        de.context,
        de.collection_id,
        de.collection_type,
        de.clamped,
    )


def _system(de: SystemEvent) -> SysDe:
    return SysDe(
        de.name,
        de.lineage.root_event_id,
        de.entity_id,
        de.content_type,
        de.parent_id,
        de.competencies,
        to_ms(de.occurred_at),
    )
