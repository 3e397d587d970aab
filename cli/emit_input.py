"""What ``da emit`` can replay, read into Kafka messages: a CSV export of proctoring events, or
JSON lines of raw messages (``da sample learning``'s output; ``docs/formats.md``).

Emit carries input, it does not judge it: every row or line that can become a message is sent
with its content exactly as in the file, and GEP decides what is valid (odd content goes to its
dead-letter topic). A row or line is bad here only when it cannot become a message at all: a CSV
row whose field count differs from the header's or that is not valid UTF-8, a line that is not a
JSON object of the documented shape. A CSV header without a required column is fatal.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

REQUIRED_COLUMNS = ("id", "type", "fulfillment_id", "created_at", "created_by_id")
FORMAT_HEADER = ("da-format", b"proctoring.csv")

_json_encode = msgspec.json.Encoder().encode


class CsvHeaderError(Exception):
    """The file cannot be replayed at all; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its first physical line in the file and its fields by column name."""

    line: int
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot become a message, with the line it starts on."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Message:
    line: int
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]  # as confluent-kafka types them
    # Only for the `-v` line, so the delivery report need not decode the value again.
    label: str


def read_csv(lines: Iterable[str]) -> tuple[list[str], Iterator[Row | BadRow]]:
    """Check the header now (raising ``CsvHeaderError``) and return it with a row iterator.

    ``lines`` should come from a file opened with ``newline=""`` so quoted fields may hold line
    breaks; line numbers are those of the file (the header is line 1).
    """
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError("no header row (the file is empty)") from None
    except csv.Error as exc:
        raise CsvHeaderError(f"unreadable header: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvHeaderError(f"header lacks required column(s): {', '.join(missing)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise CsvHeaderError(f"header repeats column(s): {', '.join(duplicated)}")
    return header, _rows(reader, header)


def _rows(reader: Any, header: list[str]) -> Iterator[Row | BadRow]:
    # csv.reader is typed as a private class; its line_num is the last physical line consumed.
    width = len(header)
    previous_end: int = reader.line_num
    while True:
        start = previous_end + 1
        try:
            values: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            previous_end = reader.line_num
            yield BadRow(start, f"unreadable CSV: {exc}")
            continue
        previous_end = reader.line_num
        if not values:  # a blank line carries no event
            continue
        if len(values) != width:
            yield BadRow(start, f"expected {width} fields, got {len(values)}")
            continue
        yield Row(start, dict(zip(header, values, strict=True)))


def to_message(row: Row) -> Message | BadRow:
    """The Kafka message for a row: JSON of its strings, keyed by fulfillment id."""
    try:
        value = _json_encode(row.fields)
        key = row.fields["fulfillment_id"].encode()
    except UnicodeEncodeError:
        # The file is read with surrogateescape, so bytes that are not UTF-8 surface here.
        return BadRow(row.line, "not valid UTF-8")
    return Message(
        line=row.line,
        key=key,
        value=value,
        headers=[FORMAT_HEADER],
        label=f"{row.fields['type']} for fulfillment {row.fields['fulfillment_id']}",
    )


def csv_messages(lines: Iterable[str]) -> Iterator[Message | BadRow]:
    """A message per CSV row; the header is checked now (``CsvHeaderError``)."""
    _, rows = read_csv(lines)
    return (to_message(r) if isinstance(r, Row) else r for r in rows)


def is_jsonl(name: str) -> bool:
    return name.endswith((".jsonl", ".ndjson"))


class JsonLine(msgspec.Struct, forbid_unknown_fields=True):
    """One line of a JSON-lines file: a raw message, its key and the format GEP should read it
    as (no ``format``: no header, GEP goes by shape). ``value`` is the message as JSON, sent
    byte for byte as written; ``text`` is a message that is not JSON (sent as its UTF-8)."""

    key: str | None = None
    format: str | None = None
    value: msgspec.Raw = msgspec.Raw(b"")  # absent: empty (a Raw cannot be in a union)
    text: str | None = None


_line_decoder = msgspec.json.Decoder(JsonLine)


def read_jsonl(lines: Iterable[str]) -> Iterator[Message | BadRow]:
    """A message per non-blank line (line numbers from 1)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = _line_decoder.decode(line.encode())
        except (msgspec.DecodeError, UnicodeEncodeError) as exc:
            yield BadRow(n, f"not a JSON line of key/format/value: {exc}")
            continue
        has_value = len(item.value) > 0
        if has_value == (item.text is not None):
            yield BadRow(n, "needs exactly one of value (JSON) or text")
            continue
        body = bytes(item.value) if has_value else (item.text or "").encode()
        yield Message(
            line=n,
            key=item.key.encode() if item.key is not None else b"",
            value=body,
            headers=[("da-format", item.format.encode())] if item.format else [],
            label=f"{item.format or 'unnamed format'} message keyed {item.key}",
        )
