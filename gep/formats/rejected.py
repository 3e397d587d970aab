"""One invalid element of a message that holds several events (a log API array)."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import InvalidEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int  # position of the element in the message
    error: InvalidEvent
