"""The learning-analytics DEs: usage ``usage.<object>.<metric>`` and system ``<entity>.<action>``
(``schemas/de/usage``, ``schemas/de/system``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from common.codec import Codec
from common.errors import InvalidEvent
from common.events.canonical import Lineage

USAGE_DE = "de/usage"
SYSTEM_DE = "de/system"
# Every usage DE the demux emits (one metric each); the DEPs that keep usage subscribe to them.
USAGE_DE_NAMES = (
    "usage.resource.timespent",
    "usage.resource.reaction",
    "usage.question.timespent",
    "usage.question.reaction",
    "usage.question.score",
    "usage.assessment.score",
    "usage.assessment.timespent",
    "usage.assessment.view",
    "usage.assessment.reaction",
    "usage.collection.view",
    "usage.collection.start",
    "usage.collection.reaction",  # a reaction to a collection itself
)
_CONTEXT = ("class_id", "course_id", "unit_id", "lesson_id")
# Every content kind the platform names, and the family the usage metrics count it in. A system
# DE carries the kind as sent (analysts filter on it); usage DEs and their names use the family.
CONTENT_FAMILIES = {
    "resource": "resource",
    "question": "question",
    "collection": "collection",
    "collection-external": "collection",
    "assessment": "assessment",
    "assessment-external": "assessment",
    "offline-activity": "assessment",
}


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One metric of one learner's play of one content. Its identity, which DEPs dedupe by, is
    ``(lineage.root_event_id, name)``: a replay or a relay's second delivery repeats both."""

    name: str
    event_id: str
    user_id: str
    content_id: str
    occurred_at: datetime
    value: float
    lineage: Lineage
    collection_id: str | None = None
    collection_type: str | None = None
    class_id: str | None = None
    course_id: str | None = None
    unit_id: str | None = None
    lesson_id: str | None = None
    session_id: str | None = None
    basis: int = 1
    clamped: bool = False

    @property
    def identity(self) -> tuple[str, str]:
        return (self.lineage.root_event_id, self.name)

    @property
    def key(self) -> str:
        """The Kafka key: the learner x content whose state the DE updates, kept in order."""
        return f"{self.user_id}|{self.content_id}"

    @property
    def context(self) -> tuple[str, str, str, str]:
        """Class, course, unit, lesson; '' where absent (independent learning)."""
        return (
            self.class_id or "",
            self.course_id or "",
            self.unit_id or "",
            self.lesson_id or "",
        )

    def renamed(self, name: str, content_id: str, lineage: Lineage, **changes: Any) -> UsageEvent:
        """The same measurement named one level up (a roll-up)."""
        return replace(self, name=name, content_id=content_id, lineage=lineage, **changes)

    def encode(self, codec: Codec) -> bytes:
        return codec.encode(
            USAGE_DE,
            {
                **{f: getattr(self, f) for f in self.__slots__ if f != "lineage"},
                "lineage": self.lineage.to_avro(),
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> UsageEvent:
        r = codec.decode(USAGE_DE, data)
        parts = str(r["name"]).split(".")
        if len(parts) != 3 or parts[0] != "usage" or not all(parts):
            # Every DEP reads the object and the metric off the name.
            raise InvalidEvent(
                "bad_value", f"{r['name']!r} is not usage.<object>.<metric>", field="name"
            )
        return cls(**{**r, "lineage": Lineage.from_avro(r["lineage"])})


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """A content, class or user was created, updated or deleted."""

    name: str
    event_id: str
    entity_id: str
    occurred_at: datetime
    lineage: Lineage
    actor_id: str | None = None
    content_type: str | None = None
    parent_id: str | None = None
    competencies: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def entity(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.name.split(".", 1)[1]

    def encode(self, codec: Codec) -> bytes:
        return codec.encode(
            SYSTEM_DE,
            {
                **{f: getattr(self, f) for f in self.__slots__ if f != "lineage"},
                "competencies": list(self.competencies),
                "attributes": dict(self.attributes),
                "lineage": self.lineage.to_avro(),
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> SystemEvent:
        r = codec.decode(SYSTEM_DE, data)
        entity, dot, action = str(r["name"]).partition(".")
        if not (entity and dot and action):
            # Every DEP reads the entity and the action off the name.
            raise InvalidEvent("bad_value", f"{r['name']!r} is not <entity>.<action>", field="name")
        return cls(
            **{
                **r,
                "competencies": tuple(r["competencies"]),
                "lineage": Lineage.from_avro(r["lineage"]),
            }
        )
