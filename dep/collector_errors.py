"""DEP ``collector-errors``: the errors table behind ``GET /v1/errors``.

It reads the dead-letter topics of the collector (rejected at the door, answered 4xx) and of GEP
(rejected later), so every rejected event lands in one table, by one road: the dead-letter topic
is the durable record, this table its queryable copy. A dead letter's topic, partition and
offset are its identity, so a batch applied twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from common.codec import Codec
from common.deadletter import H_DETAIL, H_FAILED_AT, H_FIELD, H_REASON, H_STAGE, header
from common.names import COLLECTOR, GEP, H_APP, H_STATUS
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from dep.spec import DepSpec

_COLUMNS = (
    "stage, app, status, reason, detail, field, body, failed_at, "
    "dlq_topic, dlq_partition, dlq_offset"
)


class _HasApp(msgspec.Struct):
    app: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    stage: str
    app: str | None
    status: int | None
    reason: str
    detail: str
    field: str | None
    body: str
    failed_at: datetime
    topic: str
    partition: int
    offset: int


def _app_of(body: bytes) -> str | None:
    """GEP's dead letters carry the collector's record, which names the app."""
    try:
        return msgspec.json.decode(body, type=_HasApp).app
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def to_record(msg: Message) -> ErrorRecord:
    hdrs = msg.headers()
    value = msg.value() or b""
    failed = header(hdrs, H_FAILED_AT)
    status = header(hdrs, H_STATUS)
    try:
        failed_at = datetime.fromisoformat(failed) if failed else datetime.now(UTC)
    except ValueError:
        failed_at = datetime.now(UTC)
    return ErrorRecord(
        stage=header(hdrs, H_STAGE) or "unknown",
        app=header(hdrs, H_APP) or _app_of(value),
        status=int(status) if status and status.isdigit() else None,
        reason=header(hdrs, H_REASON) or "unknown",
        detail=header(hdrs, H_DETAIL) or "",
        field=header(hdrs, H_FIELD),
        # PostgreSQL text cannot hold NUL; the original bytes stay on the dead-letter topic.
        body=value.decode(errors="replace").replace("\x00", "\ufffd"),
        failed_at=failed_at,
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
    )


class CollectorErrors:
    def decode(self, msg: Message) -> ErrorRecord:
        return to_record(msg)

    def handle(self, events: Sequence[ErrorRecord], cur: Cursor) -> None:
        cur.executemany(
            f"INSERT INTO collector_errors ({_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    e.stage,
                    e.app,
                    e.status,
                    e.reason,
                    e.detail,
                    e.field,
                    e.body,
                    e.failed_at,
                    e.topic,
                    e.partition,
                    e.offset,
                )
                for e in events
            ],
        )


def build(settings: Settings, codec: Codec) -> CollectorErrors:
    return CollectorErrors()


SPEC = DepSpec(
    name="collector-errors",
    description="Events rejected by the collector or GEP, for GET /v1/errors",
    inputs=(),
    tables=("collector_errors",),
    migrations=Path(__file__).parent / "migrations" / "collector_errors",
    input_schemas=(),  # dead letters: the original bytes and the reason in headers, not Avro
    build=build,
    dead_letters_of=(COLLECTOR, GEP),
)
