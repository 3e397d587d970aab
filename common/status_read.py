"""Reading what ``da status`` shows, from Kafka and PostgreSQL (never from the stages): samples of
every consuming stage's partitions and group, and the slower facts read once per run (dead
letters by reason, parked events, last commit, time behind)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from common import db, lag, parking, stages
from common import deadletter as dl
from common.dlq_read import Letter, read_letters
from common.kafka import make_admin, make_consumer
from common.settings import Settings
from common.stages import Stage
from common.status_model import Member, Partition, StageSample
from common.topics import Topics

LETTERS_READ = 50_000  # dead letters counted per stage at most


class Reader:
    """The clients one ``da status`` run holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.namespace)
        self.admin: AdminClient = make_admin(settings)
        self.consumer: Consumer = make_consumer(settings, f"da.status.{uuid.uuid4().hex}")
        # One connection per database (a DEP may keep its state in its own).
        self.conns: dict[str, psycopg.Connection[tuple[object, ...]]] = {}

    def close(self) -> None:
        self.consumer.close()
        for conn in self.conns.values():
            conn.close()

    def db(self, stage: Stage | None = None) -> psycopg.Connection[tuple[object, ...]]:
        """A connection to the database where the store stage keeps its state; without a stage,
        to the shared database (what no DEP owns, such as the initial loads)."""
        dep = stage.short_name if stage is not None else None
        url = self.settings.database_url if dep is None else self.settings.database_url_for(dep)
        conn = self.conns.get(url)
        if conn is None or conn.closed or conn.broken:
            conn = self.conns[url] = db.connect(self.settings, autocommit=True, dep=dep)
        return conn

    def sample(self) -> dict[str, StageSample]:
        """One reading of every consuming stage."""
        t = self.settings.io_timeout_s
        consuming = stages.consuming()
        groups = {s.name: s.group(self.settings) or "" for s in consuming}
        described = self.admin.describe_consumer_groups(list(groups.values()), request_timeout=t)
        meta = self.consumer.list_topics(timeout=t).topics
        ends: dict[tuple[str, int], int] = {}
        out = {}
        for stage in consuming:
            group = groups[stage.name]
            try:
                members = _members(described[group].result(timeout=t).members)
                parts = self._partitions(stage, group, meta, ends)
                out[stage.name] = StageSample(stage.name, tuple(parts), tuple(members))
            except (KafkaException, psycopg.Error, TimeoutError) as exc:
                out[stage.name] = StageSample(stage.name, (), (), error=_line(exc))
        return out

    def _partitions(
        self, stage: Stage, group: str, meta: dict[str, object], ends: dict[tuple[str, int], int]
    ) -> list[Partition]:
        t = self.settings.io_timeout_s
        request = [ConsumerGroupTopicPartitions(group)]
        offsets = self.admin.list_consumer_group_offsets(request)[group].result(timeout=t)
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in offsets.topic_partitions or []
            if tp.offset >= 0
        }
        stored = lag.stored_offsets(self.db(stage), group) if stage.dep is not None else {}
        parts = []
        for topic in stage.input_topics(self.topics):
            info = meta.get(topic)
            for p in sorted(getattr(info, "partitions", {}) or {}):
                key = (topic, p)
                if key not in ends:
                    ends[key] = self.consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=t
                    )[1]
                parts.append(
                    Partition(
                        topic,
                        p,
                        ends[key],
                        committed.get(key),
                        stored.get(key),
                        stage.dep is not None,
                    )
                )
        return parts

    def topic_ends(self, topic: str) -> dict[tuple[str, int], int]:
        """The end offset of every partition of ``topic``, read now from the broker."""
        t = self.settings.io_timeout_s
        info = self.consumer.list_topics(topic, timeout=t).topics.get(topic)
        return {
            (topic, p): self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=t)[1]
            for p in sorted(getattr(info, "partitions", {}) or {})
        }

    def details(
        self, stage: Stage, sample: StageSample, letters: Iterable[Letter] | None = None
    ) -> Details:
        """The facts read once per run, not per sample (``letters``: the stage's dead letters,
        when the caller has read them already)."""
        if letters is None:
            letters = read_letters(self.settings, stage.name, limit=LETTERS_READ)
        reasons = Counter(x.get(dl.H_REASON) or "unknown" for x in letters)
        parked = None
        last = None
        if stage.dep is not None:
            try:
                conn = self.db(stage)
                parked = parking.count(conn, stage.owner or stage.short_name)
                row = conn.execute(
                    "SELECT max(updated_at) FROM da_offsets WHERE consumer_group = %s",
                    (stage.group(self.settings),),
                ).fetchone()
                last = row[0] if row and isinstance(row[0], datetime) else None
            except psycopg.Error:
                pass
        return Details(dict(reasons), parked, last, self._behind(sample))

    def _behind(self, sample: StageSample) -> float | None:
        """Record time of the newest input record minus that of the oldest unprocessed one,
        over the partitions furthest behind."""
        worst = sorted((p for p in sample.partitions if p.lag > 0), key=lambda p: -p.lag)[:3]
        behind = None
        for p in worst:
            oldest = self._stamp(p.topic, p.partition, p.position, 1)
            newest = self._stamp(p.topic, p.partition, max(p.position, p.end - 2), 2)
            if oldest is not None and newest is not None:
                behind = max(behind or 0.0, (newest - oldest) / 1000)
        return behind

    def _stamp(self, topic: str, partition: int, offset: int, n: int) -> int | None:
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        try:
            got = [m for m in self.consumer.consume(n, 2.0) if m.error() is None]
        finally:
            self.consumer.unassign()
        stamps = [m.timestamp()[1] for m in got if m.timestamp()[1] > 0]
        return max(stamps) if stamps else None


@dataclass(frozen=True)
class Details:
    dead_letters: dict[str, int]
    parked: int | None
    last_commit: datetime | None
    behind_s: float | None


def _members(raw: list[object]) -> list[Member]:
    out = []
    for m in raw:
        assignment = getattr(getattr(m, "assignment", None), "topic_partitions", None) or []
        out.append(
            Member(
                str(getattr(m, "client_id", "")),
                str(getattr(m, "host", "")).lstrip("/"),
                tuple((tp.topic, tp.partition) for tp in assignment),
            )
        )
    return out


def _line(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        return f"Kafka: {exc.args[0].str()}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
