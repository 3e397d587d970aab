"""What ``POST /v1/events`` does with a body, apart from HTTP: check it, and turn it into the
records for the ingest topic, or into the rejections to answer and record.

Where each check lives, and why:

- **here, synchronously** (the client can still be told, with the field): the body is JSON, one
  event object or a list of them; each event has the documented fields with the right types
  (``common.web_post.decode_event`` / ``check``, the same code GEP runs), its payload nested at
  most 64 deep and holding only text PostgreSQL can store; its payload matches its type's schema
  (``collector.eventtypes``); its timestamp is not ahead of the collector's clock by more than
  ``DA_COLLECTOR_MAX_SKEW_S`` (only the receiver's clock at receipt is a fair judge: checked
  later, the verdict would depend on how far behind the pipeline runs); and every record a later
  stage makes of it fits in ``DA_MAX_MESSAGE_BYTES`` (GEP re-encodes the payload, and a number
  like ``9e15`` comes out as ``9000000000000000.0``). A batch is accepted whole or refused whole,
  so a client's retry never half-duplicates it.
- **in GEP**, again: the structural checks, for web records that reach the ingest topic by any
  other road; what fails there goes to GEP's dead-letter topic and the errors table.
- **in the DEP**: nothing the collector let through; a record from another road that the
  database refuses is dead-lettered by the store processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from collector.eventtypes import EventTypes
from collector.produce import Record
from common import deadletter
from common import web_post as web
from common.checks import too_deep
from common.errors import InvalidEvent
from common.names import COLLECTOR, FORMAT_HEADER, H_APP, H_STATUS
from common.topics import Topics

_FORMAT = [(FORMAT_HEADER, web.NAME.encode())]
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
# What a record holds besides the posted event (envelope, key, headers) or besides the payload
# (the canonical record's and the discrete event's other fields; a dead letter's headers): the
# fields around it are bounded (ids 200 characters, labels 100, details 2,000 bytes).
RECORD_HEADROOM = 8192
# Re-encoding a payload grows it at most this much: only floats grow, "1e15" (4 bytes) becoming
# "1000000000000000.0" (18). Below this a payload need not be re-encoded to know it fits.
_MAX_GROWTH = 5
_FIELD_KEPT = 200  # a field name is a path of keys the client chose: bounded in answers and rows


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


_STATUS = {"bad_json": 400, "event_too_large": 413}


class Rejected(Exception):
    def __init__(self, rejections: list[Rejection]) -> None:
        super().__init__(rejections[0].detail)
        self.rejections = rejections
        self.status = rejections[0].status


class Ingest:
    def __init__(
        self,
        topics: Topics,
        types: EventTypes,
        *,
        max_skew_s: float,
        max_batch: int,
        max_message_bytes: int,
    ) -> None:
        self.topic = topics.ingest
        self.dead_letter_topic = topics.dead_letter(COLLECTOR)
        self.types = types
        self.max_skew = timedelta(seconds=max_skew_s)
        self.max_batch = max_batch
        # The largest posted event (and re-encoded payload) every later record can carry.
        self.max_event_bytes = max_message_bytes - RECORD_HEADROOM

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
        except RecursionError:
            deep = too_deep()
            raise Rejected([Rejection(422, deep.reason, deep.detail, body=body)]) from None
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
                self._check_size(event, raw)
            except InvalidEvent as exc:
                status = _STATUS.get(exc.reason, 422)
                index = None if single else i
                field = exc.field[:_FIELD_KEPT] if exc.field else None
                rejections.append(Rejection(status, exc.reason, exc.detail, field, index, raw))
                continue
            records.append(
                Record(self.topic, event.session_id.encode(), web.envelope(app, now, raw), _FORMAT)
            )
        if rejections:
            raise Rejected(rejections)
        return records

    def _check_size(self, event: web.WebEvent, raw: bytes) -> None:
        limit = self.max_event_bytes
        if len(raw) > limit:
            raise InvalidEvent("event_too_large", f"the event is over {limit} bytes", field=None)
        if len(raw) * _MAX_GROWTH > limit and len(web.encoded_data(event)) > limit:
            raise InvalidEvent(
                "event_too_large",
                f"data re-encoded (numbers in full) is over {limit} bytes",
                field="data",
            )

    def dead_letter(self, r: Rejection, app: str | None, now: datetime) -> Record:
        extra = [(H_STATUS, str(r.status).encode())]
        if app:
            extra.append((H_APP, app.encode()))
        dl = deadletter.build(
            COLLECTOR, None, r.body, r.reason, r.detail, field=r.field, extra=extra, now=now
        )
        return Record(self.dead_letter_topic, dl.key, dl.value or b"", dl.headers)
