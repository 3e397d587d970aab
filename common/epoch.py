"""Epoch milliseconds and datetimes, converted with integer arithmetic only.

Every duration the pipeline derives is a difference of epoch milliseconds. Going through float
seconds (``timestamp() * 1000``, ``total_seconds() * 1000``) loses a millisecond now and then
(``1614606797.131`` is not exactly representable), so conversions here divide ``timedelta``s,
which Python keeps as whole microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """The UTC instant ``ms`` milliseconds after the epoch, exactly."""
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(at: datetime) -> int:
    """Whole milliseconds since the epoch (sub-millisecond parts dropped, toward the past).
    ``at`` must carry its offset: a naive time is not an instant."""
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no UTC offset")
    return (at - EPOCH) // _MS
