"""DEP ``collector-errors``: the errors table behind ``GET /v1/errors``.

It reads the dead-letter topics of the collector (rejected at the door, answered 4xx) and of GEP
(rejected later), so every rejected event lands in one table, by one road: the dead-letter topic
is the durable record, this table its queryable copy. A dead letter's topic, partition and
offset are its identity, so a batch applied twice changes nothing.

Whatever a dead letter holds, its row can be stored: every text is cut to a bound (the body to
its first 64 KiB, with the original length beside it) and NUL replaced, so no rejection can stall
this DEP on PostgreSQL's limits. A row's ``app`` is only ever an authenticated one: the header
the collector sets after checking the key, or the app in the collector's own record that GEP
rejected. What a client claims in its body stays in the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from common.codec import Codec
from common.deadletter import H_DETAIL, H_FAILED_AT, H_FIELD, H_REASON, H_STAGE, header
from common.names import COLLECTOR, FORMAT_HEADER, GEP, H_APP, H_STATUS
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from dep.spec import DepSpec

WEB_FORMAT = "web"  # the collector's records on the ingest topic
_COLUMNS = (
    "stage, app, status, reason, detail, field, body, body_bytes, failed_at, "
    "dlq_topic, dlq_partition, dlq_offset"
)
BODY_KEPT = 65536
# Characters kept of each header-borne text; app and reason are indexed, and a b-tree entry
# must stay under ~2,700 bytes.
_KEPT = {"stage": 100, "app": 200, "reason": 100, "detail": 2000, "field": 500}


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
    body_bytes: int
    failed_at: datetime
    topic: str
    partition: int
    offset: int


def _app_of(record: bytes) -> str | None:
    """The app of a collector's record (the collector wrote it after checking the key)."""
    try:
        return msgspec.json.decode(record, type=_HasApp).app
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def _text(value: str | None, name: str) -> str | None:
    # PostgreSQL text cannot hold NUL; the original bytes stay on the dead-letter topic.
    return None if value is None else value[: _KEPT[name]].replace("\x00", "\ufffd")


def _app(hdrs: list[tuple[str, bytes]] | None, stage: str | None, value: bytes) -> str | None:
    if stage == COLLECTOR:
        return header(hdrs, H_APP)  # absent: the client was not authenticated
    if stage == GEP and header(hdrs, FORMAT_HEADER) == WEB_FORMAT:
        return _app_of(value)
    return None


def to_record(msg: Message) -> ErrorRecord:
    """The row for any dead letter, however malformed: this DEP must never stop on one."""
    hdrs = msg.headers()
    value = msg.value() or b""
    failed = header(hdrs, H_FAILED_AT)
    status = header(hdrs, H_STATUS)
    stage = header(hdrs, H_STAGE)
    try:
        failed_at = datetime.fromisoformat(failed) if failed else datetime.now(UTC)
    except ValueError:
        failed_at = datetime.now(UTC)
    return ErrorRecord(
        stage=_text(stage, "stage") or "unknown",
        app=_text(_app(hdrs, stage, value), "app"),
        status=int(status)
        if status and status.isascii() and status.isdigit() and len(status) < 4
        else None,
        reason=_text(header(hdrs, H_REASON), "reason") or "unknown",
        detail=_text(header(hdrs, H_DETAIL), "detail") or "",
        field=_text(header(hdrs, H_FIELD), "field"),
        body=value[:BODY_KEPT].decode(errors="replace").replace("\x00", "\ufffd"),
        body_bytes=len(value),
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
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    e.stage,
                    e.app,
                    e.status,
                    e.reason,
                    e.detail,
                    e.field,
                    e.body,
                    e.body_bytes,
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
