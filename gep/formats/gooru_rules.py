"""What the Gooru formats share: field checks with typed reasons, the time-spent clamp, content
kinds, and which entities and metrics a play changes (the rules of the platform's own parser).

Not a format itself: ``gooru_logapi``, ``gooru_logwriter`` and the partner transformers use it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

import msgspec

from common.epoch import from_ms
from common.errors import InvalidEvent
from common.events import CONTENT_FAMILIES, Impact, Usage

TIME_SPENT_MAX_MS = 7_200_000  # 2 h: the older logger's clamp
_MAX_ID = 200
# 2000-01-01 .. 2100-01-01 in epoch ms: a value outside is seconds, micros or garbage.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000
# Every kind of collection the formats name, folded to the two families the metrics know.
COLLECTION_KINDS = {k: f for k, f in CONTENT_FAMILIES.items() if f in ("collection", "assessment")}


def invalid_shape(exc: msgspec.ValidationError, prefix: str = "") -> InvalidEvent:
    """msgspec says ``Expected `str`, got `int` - at `$.user.gooruUId```: keep the path as
    the field, so the reason names it."""
    text = str(exc)
    what, _, where = text.partition(" - at `")
    path = where.rstrip("`").removeprefix("$").lstrip(".") if where else None
    return InvalidEvent("bad_type", what, field=f"{prefix}{path}" if path else prefix or None)


T = TypeVar("T")
# An integer that reaches a canonical record: Avro's long. JSON (and msgspec) allow more.
Long = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


def decode(decoder: msgspec.json.Decoder[T], value: bytes | None, prefix: str = "") -> T:
    """Typed decode of one event, every failure an ``InvalidEvent`` naming the field."""
    if not value:
        raise InvalidEvent("empty", "the event has no body")
    try:
        return decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise invalid_shape(exc, prefix) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent("bad_json", str(exc)) from None


def required_id(value: str | None, field: str) -> str:
    text = optional_id(value, field)
    if text is None:
        raise InvalidEvent("missing_field", f"{field} is missing or empty", field=field)
    return text


def optional_id(value: str | None, field: str) -> str | None:
    """Any non-empty string is an id (real ids are not always UUIDs)."""
    if value is None or not value.strip():
        return None
    if "\x00" in value or len(value) > _MAX_ID:
        raise InvalidEvent(
            "bad_value", f"{field} must be 1..{_MAX_ID} characters without NUL", field=field
        )
    return value.strip()


def checked_ms(value: int | None, field: str) -> int:
    """A checked epoch-milliseconds field, kept as an integer: durations are differences of
    these, never of floats."""
    if value is None:
        raise InvalidEvent("missing_field", f"{field} is missing", field=field)
    if not _MIN_MS <= value < _MAX_MS:
        raise InvalidEvent(
            "bad_timestamp", f"{field}={value} is not epoch milliseconds in 2000..2100", field=field
        )
    return value


def epoch_ms(value: int | None, field: str) -> datetime:
    """A checked epoch-milliseconds field as the instant it names, exactly."""
    return from_ms(checked_ms(value, field))


def clamp_time_spent(ms: int) -> tuple[int, int | None]:
    """Time spent within 0..2 h, and the reported value when it had to be clamped."""
    if 0 <= ms <= TIME_SPENT_MAX_MS:
        return ms, None
    return (0 if ms < 0 else TIME_SPENT_MAX_MS), ms


def collection_kind(value: str | None, field: str) -> str:
    if value is None or value not in COLLECTION_KINDS:
        raise InvalidEvent(
            "bad_value",
            f"{field}={value!r} is not one of {', '.join(sorted(COLLECTION_KINDS))}",
            field=field,
        )
    return COLLECTION_KINDS[value]


def question_score(answer_status: str | None) -> float | None:
    """correct -> 100 %, incorrect or attempted -> 0 %; anything else (skipped) is unscored."""
    if answer_status == "correct":
        return 100.0
    if answer_status in ("incorrect", "attempted"):
        return 0.0
    return None


def percent(value: float | None, field: str) -> float | None:
    if value is not None and not 0 <= value <= 100:
        raise InvalidEvent("bad_value", f"{field}={value} is not a percentage", field=field)
    return value


# One rule per usage metric, in terms of what the learner did, for every format that can say it
# (docs/formats.md has the table of which raw event counts in each format):
# - a start: the learner began a play of a collection or an assessment, of any kind;
# - a view of a collection: the learner opened it (counted at its start);
# - a view of an assessment: the learner finished an attempt (counted at its end);
# - time spent and scores: at the end of a play; a collection's own come from its items (roll-up);
# - a reaction: whenever the learner gives one, to any content.
PLAYED = ("collection", "assessment")


def views_on_start(kind: str) -> int:
    return 1 if kind == "collection" else 0


def views_on_stop(kind: str) -> int:
    return 1 if kind == "assessment" else 0


def start_impacts(usage: Usage) -> tuple[Impact, ...]:
    """What the start of a play changes: a start of a collection or an assessment, and the
    view of a collection. An item's start changes nothing (its end says everything)."""
    if not usage.is_student or usage.content_type not in PLAYED:
        return ()
    view = (Impact("collection", "view"),) if usage.metrics.views else ()
    return (Impact("collection", "start"), *view)


def stop_impacts(usage: Usage) -> tuple[Impact, ...]:
    """What the end of a play changes. A collection's own time and score are not here: the
    collection-rollup DEP derives them from its resources and questions (the demux emits the
    lowest dimension only), and counting the collection's total too would count that time
    twice."""
    if not usage.is_student:
        return ()  # a teacher's preview changes no learner's metrics
    m, kind = usage.metrics, usage.content_type
    out = []
    if kind != "collection":
        if m.time_spent_ms is not None:
            out.append(Impact(kind, "timespent"))
        if kind in ("question", "assessment") and m.score is not None:
            out.append(Impact(kind, "score"))
        if m.views:
            out.append(Impact(kind, "view"))
    if m.reaction:
        out.append(Impact(kind, "reaction"))
    return tuple(out)
