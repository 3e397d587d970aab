"""The two roads for failure.

``InvalidEvent`` is the only road to a dead-letter topic: the event can never succeed, however
often it is retried. ``TransientError`` (and the broker and database errors the run loop knows)
mean the world is briefly wrong: the loop backs off and retries, never dead-letters, never
commits past. Any other exception is a bug; the process exits non-zero without committing, and
the orchestrator restarts it.
"""

from __future__ import annotations


class InvalidEvent(Exception):
    """An event that will never succeed. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class TransientError(Exception):
    """A fault that may clear by itself: retry after a back-off."""
