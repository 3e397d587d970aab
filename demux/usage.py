"""Usage: each impact GEP stated on a canonical usage event becomes one DE
``usage.<object>.<metric>`` carrying that one metric (one metric per DE, the lowest
dimension only; the collection-rollup DEP emits the collection level).

Keyed by learner x content, the state the DE updates, so one learner's plays of one content
stay in order while a class's usage spreads over the partitions.
"""

from __future__ import annotations

from collections.abc import Callable

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import USAGE_DE, CanonicalEvent, Lineage, UsageEvent, UsageMetrics
from common.events.learning import USAGE_DE_NAMES as NAMES
from common.topics import Source
from demux.rules import DiscreteEvent

ENTITY = "usage"
BUCKETS: tuple[tuple[Source, str], ...] = tuple(("demux", n.removeprefix("usage.")) for n in NAMES)
SCHEMA = USAGE_DE
_VALUE: dict[str, Callable[[UsageMetrics], float | int | None]] = {
    "timespent": lambda m: m.time_spent_ms,
    "score": lambda m: m.score,
    "reaction": lambda m: m.reaction,
    "view": lambda m: m.views,
    "start": lambda m: 1,
}


def fan_out(event: CanonicalEvent, codec: Codec, stage: str) -> list[DiscreteEvent]:
    u = event.usage
    if u is None:
        raise InvalidEvent("missing_usage", "a usage event without its usage record", field="usage")
    lineage = Lineage(root_event_id=event.event_id, stages=("gep", stage), hops=1)
    out = []
    for impact in event.impacts:
        name = f"usage.{impact.entity}.{impact.metric}"
        value = _VALUE[impact.metric](u.metrics) if impact.metric in _VALUE else None
        if name not in NAMES or value is None:
            raise InvalidEvent(
                "unknown_impact", f"no DE {name} with a value in this event", field="impacts"
            )
        de = UsageEvent(
            name=name,
            event_id=event.event_id,
            user_id=u.user_id,
            content_id=u.content_id,
            occurred_at=event.occurred_at,
            value=float(value),
            lineage=lineage,
            collection_id=u.collection_id,
            collection_type=u.collection_type,
            class_id=u.class_id,
            course_id=u.course_id,
            unit_id=u.unit_id,
            lesson_id=u.lesson_id,
            session_id=u.session_id,
            clamped=impact.metric == "timespent" and u.metrics.time_spent_raw_ms is not None,
        )
        out.append(DiscreteEvent(name, de.key, de.encode(codec)))
    return out
