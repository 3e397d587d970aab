"""What the workflow's stages share: selector subscriptions, and commands sent as raw messages.

**Selectors.** A broadcast carries its selector (``state.change.Processing``,
``pipeline.process.EU``) in the ``da-selector`` header. A DEP that declares selector globs
gets its handler wrapped in ``Selecting``: a message whose selector matches none of them is
skipped without decoding its value, and since it stays in the batch the store processor
commits past it with the rest.

**Commands from actors.** An actor DEP reacts to a broadcast by issuing commands the way any
client does: a raw ``xtss`` message on the ingest topic, written through its outbox, so it is
sent once its reaction is committed. ``hops`` counts the commands caused by broadcasts since the
last external command (which has none); the state service refuses a command past the hop limit,
so actors that ping-pong stop, while a workflow that loops through an outside decision (a
reviewer sending an OUS back) starts again from 0 every time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Generic, TypeVar

from common.deadletter import header
from common.outbox import OutboxMessage
from common.runloop import Message
from common.store import Cursor, StoreHandler
from common.topics import Topics

SELECTOR_HEADER = "da-selector"
FORMAT_HEADER = "da-format"  # the header GEP reads a raw message's format from
E = TypeVar("E")


def matches(selector: str | None, patterns: Sequence[str]) -> bool:
    return selector is not None and any(fnmatchcase(selector, p) for p in patterns)


class Selecting(Generic[E]):
    """A store handler that only sees the messages whose selector matches ``patterns``."""

    def __init__(self, inner: StoreHandler[E], patterns: Sequence[str]) -> None:
        if not patterns:
            raise ValueError("a selector subscription needs at least one pattern")
        self.inner = inner
        self.patterns = tuple(patterns)
        self.skipped = 0

    def decode(self, msg: Message) -> E | None:
        if not matches(header(msg.headers(), SELECTOR_HEADER), self.patterns):
            self.skipped += 1
            return None
        return self.inner.decode(msg)

    def handle(self, events: Sequence[E | None], cur: Cursor) -> None:
        selected = [e for e in events if e is not None]
        if selected:
            self.inner.handle(selected, cur)


def command_message(
    topics: Topics,
    command_id: str,
    ous_uid: str,
    operation: str,
    value: str | None,
    at: datetime,
    hops: int | None,
    reply_to: str | None = None,
) -> OutboxMessage:
    """A workflow command as any client sends it (JSON ``xtss``, keyed by OUS); ``hops`` is
    None for an outside command."""
    body: dict[str, object] = {
        "id": command_id,
        "operation": operation,
        "ousUID": ous_uid,
        "timestamp": at.isoformat(),
    }
    for name, extra in (("value", value), ("hops", hops), ("reply_to", reply_to)):
        if extra is not None:
            body[name] = extra
    return OutboxMessage(
        topics.ingest,
        ous_uid.encode(),
        json.dumps(body, sort_keys=True).encode(),
        ((FORMAT_HEADER, b"xtss"),),
    )
