"""What ``POST /v1/events`` does with a body, apart from HTTP: check it, and turn it into the
records for the ingest topic, or into the rejections to answer and record.

Where each check lives, and why:

- **here, synchronously** (the client can still be told, with the field): the body is JSON, one
  event object or a list of them; each event has the seed's fields with the right types
  (``common.web_post.decode_event`` / ``check``, the same code GEP runs); its payload matches its
  type's schema (``collector.eventtypes``); its timestamp is not ahead of the collector's clock by
  more than ``DA_COLLECTOR_MAX_SKEW_S`` (only the receiver's clock at receipt is a fair judge:
  checked later, the verdict would depend on how far behind the pipeline runs). A batch is
  accepted whole or refused whole, so a client's retry never half-duplicates it.
- **in GEP**, again: the structural checks, for web records that reach the ingest topic by any
  other road; what fails there goes to GEP's dead-letter topic and the errors table.
- **in the DEP**: only what the database itself refuses (a NUL in the payload), dead-lettered by
  the store processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from collector.eventtypes import EventTypes
from collector.produce import Record
from common import web_post as web
from common.deadletter import H_DETAIL, H_FAILED_AT, H_FIELD, H_REASON, H_STAGE
from common.errors import InvalidEvent
from common.names import COLLECTOR, FORMAT_HEADER, H_APP, H_STATUS
from common.topics import Topics

_FORMAT = [(FORMAT_HEADER, web.NAME.encode())]
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str
    detail: str
    field: str | None = None
    index: int | None = None  # position in a batch; None: the whole body
    body: bytes = b""  # what is kept in the errors table: the event, or the body

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        return out


class Rejected(Exception):
    def __init__(self, rejections: list[Rejection]) -> None:
        super().__init__(rejections[0].detail)
        self.rejections = rejections
        self.status = rejections[0].status


class Ingest:
    def __init__(
        self, topics: Topics, types: EventTypes, *, max_skew_s: float, max_batch: int
    ) -> None:
        self.topic = topics.ingest
        self.dead_letter_topic = topics.dead_letter(COLLECTOR)
        self.types = types
        self.max_skew = timedelta(seconds=max_skew_s)
        self.max_batch = max_batch

    def split(self, body: bytes) -> tuple[list[bytes], bool]:
        """The raw bytes of each event in the body, and whether it was one object (not a list)."""
        text = body.lstrip()
        if not text:
            raise Rejected([Rejection(400, "empty_body", "the request has no body")])
        if text[:1] == b"{":
            return [text], True
        if text[:1] != b"[":
            raise Rejected(
                [
                    Rejection(
                        400, "not_object", "the body must be an event object or a list", body=body
                    )
                ]
            )
        try:
            items = _batch_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Rejected([Rejection(400, "bad_json", str(exc), body=body)]) from None
        if not items:
            raise Rejected([Rejection(400, "empty_batch", "the list holds no event", body=body)])
        if len(items) > self.max_batch:
            raise Rejected(
                [Rejection(413, "batch_too_large", f"at most {self.max_batch} events per post")]
            )
        return [bytes(i) for i in items], False

    def prepare(self, app: str, raws: list[bytes], single: bool, now: datetime) -> list[Record]:
        """The ingest records for the events ``split`` found, or ``Rejected`` with every event's
        faults."""
        records: list[Record] = []
        rejections: list[Rejection] = []
        latest = now + self.max_skew
        for i, raw in enumerate(raws):
            try:
                event = web.decode_event(raw)
                occurred_at = web.check(event)
                if occurred_at > latest:
                    raise InvalidEvent(
                        "future_timestamp",
                        f"timestamp {occurred_at.isoformat()} is more than "
                        f"{self.max_skew.total_seconds():g} s ahead of the collector's clock",
                        field="timestamp",
                    )
                self.types.check(event.category, event.name, event.data)
            except InvalidEvent as exc:
                status = 400 if exc.reason == "bad_json" else 422
                index = None if single else i
                rejections.append(Rejection(status, exc.reason, exc.detail, exc.field, index, raw))
                continue
            records.append(
                Record(self.topic, event.session_id.encode(), web.envelope(app, now, raw), _FORMAT)
            )
        if rejections:
            raise Rejected(rejections)
        return records

    def dead_letter(self, r: Rejection, app: str | None, now: datetime) -> Record:
        headers = [
            (H_REASON, r.reason.encode()),
            (H_DETAIL, r.detail.encode()[:2000]),
            (H_STAGE, COLLECTOR.encode()),
            (H_STATUS, str(r.status).encode()),
            (H_FAILED_AT, now.isoformat().encode()),
        ]
        if r.field:
            headers.append((H_FIELD, r.field.encode()))
        if app:
            headers.append((H_APP, app.encode()))
        return Record(self.dead_letter_topic, None, r.body, headers)
