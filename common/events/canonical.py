"""The canonical record GEP publishes (``schemas/canonical``), and the lineage every DE carries.

Frozen msgspec structs rather than frozen dataclasses: every event is built once per stage it
crosses, and a struct is built about ten times faster (a frozen dataclass sets each field
through ``object.__setattr__``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from msgspec.structs import asdict

from common.codec import Codec
from common.errors import InvalidEvent
from common.events.plain import CANONICAL as CANONICAL  # re-exported: its home for callers
from common.events.plain import canonical_body, writes_plain


class Lineage(msgspec.Struct, frozen=True):
    """Where a DE came from: the root raw event, the stages it passed, how many DE hops."""

    root_event_id: str
    stages: tuple[str, ...]
    hops: int

    def to_avro(self) -> dict[str, Any]:
        return {"root_event_id": self.root_event_id, "stages": list(self.stages), "hops": self.hops}

    @classmethod
    def from_avro(cls, r: Mapping[str, Any]) -> Lineage:
        return cls(r["root_event_id"], tuple(r["stages"]), r["hops"])

    def chain(self) -> str:
        return " > ".join(self.stages)

    def next_hop(self, stage: str, max_hops: int) -> Lineage:
        """The lineage of a DE emitted by ``stage`` from this one. Past ``max_hops`` the chain
        stops: the input is an invalid event (dead-lettered with its chain), so a cycle of DEPs
        can never spin."""
        if self.hops + 1 > max_hops:
            raise InvalidEvent(
                "hop_limit",
                f"{stage} would emit hop {self.hops + 1}, over the limit of {max_hops}; "
                f"chain: {self.chain()} > {stage}",
                field="lineage.hops",
            )
        return Lineage(self.root_event_id, (*self.stages, stage), self.hops + 1)


class UsageMetrics(msgspec.Struct, frozen=True):
    time_spent_ms: int | None = None
    time_spent_raw_ms: int | None = None  # what was reported, only when it was clamped
    score: float | None = None  # percent
    max_score: float | None = None
    reaction: int | None = None
    views: int = 0
    answer_status: str | None = None


class Usage(msgspec.Struct, frozen=True):
    """A learner's play of one content, whatever format reported it."""

    user_id: str
    content_id: str
    content_type: str  # resource, question, collection, assessment
    action: str  # start, stop, reaction, score
    collection_id: str | None = None
    collection_type: str | None = None
    class_id: str | None = None
    course_id: str | None = None
    unit_id: str | None = None
    lesson_id: str | None = None
    session_id: str | None = None
    is_student: bool = True
    metrics: UsageMetrics = msgspec.field(default_factory=UsageMetrics)

    def to_avro(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": asdict(self.metrics)}

    @classmethod
    def from_avro(cls, r: Mapping[str, Any]) -> Usage:
        return cls(**{**r, "metrics": UsageMetrics(**r["metrics"])})


class SystemChange(msgspec.Struct, frozen=True):
    action: str  # created, updated, deleted
    content_type: str | None = None
    parent_id: str | None = None
    competencies: tuple[str, ...] = ()

    def to_avro(self) -> dict[str, Any]:
        return {**asdict(self), "competencies": list(self.competencies)}

    @classmethod
    def from_avro(cls, r: Mapping[str, Any]) -> SystemChange:
        return cls(r["action"], r["content_type"], r["parent_id"], tuple(r["competencies"]))


class Impact(msgspec.Struct, frozen=True):
    """An entity and metric an event changes; the demux makes one DE of each."""

    entity: str
    metric: str


class CanonicalEvent(msgspec.Struct, frozen=True):
    event_id: str
    source: str
    event_type: str
    entity_type: str
    entity_id: str
    occurred_at: datetime
    received_at: datetime
    actor_id: str | None = None
    attributes: Mapping[str, str] = msgspec.field(default_factory=dict)
    usage: Usage | None = None
    system: SystemChange | None = None
    impacts: tuple[Impact, ...] = ()

    def encode(self, codec: Codec) -> bytes:
        if writes_plain(codec):  # most events: written directly (``common.events.plain``)
            body = canonical_body(self)
            if body is not None:
                return codec.header(CANONICAL) + body
        return codec.encode(
            CANONICAL,
            {
                "event_id": self.event_id,
                "source": self.source,
                "event_type": self.event_type,
                "entity_type": self.entity_type,
                "entity_id": self.entity_id,
                "occurred_at": self.occurred_at,
                "received_at": self.received_at,
                "actor_id": self.actor_id,
                # fastavro takes a dict only; GEP's formats build dicts, so mostly no copy.
                "attributes": a if type(a := self.attributes) is dict else dict(a),
                "usage": None if self.usage is None else self.usage.to_avro(),
                "system": None if self.system is None else self.system.to_avro(),
                # Most events have no impacts: an empty list without a comprehension's call.
                "impacts": [{"entity": i.entity, "metric": i.metric} for i in self.impacts]
                if self.impacts
                else [],
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> CanonicalEvent:
        r = codec.decode(CANONICAL, data)
        return cls(
            r["event_id"],
            r["source"],
            r["event_type"],
            r["entity_type"],
            r["entity_id"],
            r["occurred_at"],
            r["received_at"],
            r["actor_id"],
            r["attributes"],
            None if r["usage"] is None else Usage.from_avro(r["usage"]),
            None if r["system"] is None else SystemChange.from_avro(r["system"]),
            tuple(Impact(i["entity"], i["metric"]) for i in r["impacts"]),
        )
