"""``da emit``'s pure parts: reading the CSV and building messages, no Kafka."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.emit import Pacer
from cli.emit_input import (
    FORMAT_HEADER,
    BadRow,
    CsvHeaderError,
    Message,
    Row,
    read_csv,
    to_message,
)

HEADER = "id,type,fulfillment_id,created_at,created_by_id,ip_address\n"


def _items(text: str) -> list[Row | BadRow]:
    _, items = read_csv(io.StringIO(text, newline=""))
    return list(items)


def test_rows_carry_every_column_with_file_line_numbers() -> None:
    items = _items(
        HEADER
        + "1,Event::Welcome,15905113,2020-01-18 08:00:01.123456,77,10.0.0.1\n"
        + "2,Event::LmiDownload,15905113,2020-01-18 08:00:30,77,\n"
    )
    assert items == [
        Row(
            2,
            {
                "id": "1",
                "type": "Event::Welcome",
                "fulfillment_id": "15905113",
                "created_at": "2020-01-18 08:00:01.123456",
                "created_by_id": "77",
                "ip_address": "10.0.0.1",
            },
        ),
        Row(
            3,
            {
                "id": "2",
                "type": "Event::LmiDownload",
                "fulfillment_id": "15905113",
                "created_at": "2020-01-18 08:00:30",
                "created_by_id": "77",
                "ip_address": "",
            },
        ),
    ]


def test_wrong_field_count_is_a_bad_row_and_reading_goes_on() -> None:
    items = _items(
        HEADER
        + "1,Event::Welcome,15905113,2020-01-18 08:00:01,77,10.0.0.1\n"
        + "2,Event::Welcome,15905114,2020-01-18 08:00:02\n"
        + "3,Event::Welcome,15905115,2020-01-18 08:00:03,77,10.0.0.1,extra\n"
        + "4,Event::Welcome,15905116,2020-01-18 08:00:04,77,10.0.0.1\n"
    )
    assert [type(i).__name__ for i in items] == ["Row", "BadRow", "BadRow", "Row"]
    assert str(items[1]) == "line 3: expected 6 fields, got 4"
    assert str(items[2]) == "line 4: expected 6 fields, got 7"
    assert isinstance(items[3], Row)
    assert items[3].line == 5


def test_line_numbers_count_physical_lines_and_skip_blank_ones() -> None:
    items = _items(
        HEADER
        + '1,Event::ChatMessage,15905113,2020-01-18 08:00:01,77,"multi\nline"\n'
        + "\n"
        + "2,short\n"
    )
    assert isinstance(items[0], Row)
    assert items[0].line == 2
    assert items[0].fields["ip_address"] == "multi\nline"
    assert items == [items[0], BadRow(5, "expected 6 fields, got 2")]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no header row"),
        ("id,type,fulfillment_id,created_at\n1,a,2,3\n", "created_by_id"),
        ("id,fulfillment_id,created_by_id\n", "type, created_at"),
        ("id,type,fulfillment_id,created_at,created_by_id,id\n", "repeats column(s): id"),
    ],
)
def test_header_problems_are_fatal_before_any_row(text: str, error: str) -> None:
    with pytest.raises(CsvHeaderError, match=error.replace("(", r"\(").replace(")", r"\)")):
        read_csv(io.StringIO(text, newline=""))


def test_message_is_the_row_as_json_keyed_by_fulfillment() -> None:
    fields = {
        "id": "9",
        "type": "Event::LaunchStart",
        "fulfillment_id": "15905113",
        "created_at": "2020-01-18 08:00:01.123456",
        "created_by_id": "77",
        "note": 'café, "quoted"',
    }
    message = to_message(Row(12, fields))
    assert isinstance(message, Message)
    assert message.key == b"15905113"
    assert message.headers == [FORMAT_HEADER] == [("da-format", b"proctoring.csv")]
    assert list(json.loads(message.value).items()) == list(fields.items())
    assert (message.line, message.label) == (12, "Event::LaunchStart for fulfillment 15905113")


@pytest.mark.parametrize(
    "created_at", ["2020-01-18 08:00:01", "2020-01-18 08:00:01.5", "not a time", "", " 08:00 "]
)
def test_content_is_never_judged_or_converted(created_at: str) -> None:
    (row,) = _items(HEADER + f'1,,15905113,"{created_at}",77,x\n')
    assert isinstance(row, Row)
    message = to_message(row)
    assert isinstance(message, Message)
    assert json.loads(message.value)["created_at"] == created_at
    assert json.loads(message.value)["type"] == ""


def test_bytes_that_are_not_utf8_make_a_bad_row() -> None:
    raw = (HEADER + "1,Event::Welcome,15905113,2020-01-18 08:00:01,77,caf\xe9\n").encode("latin-1")
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape", newline="")
    _, items = read_csv(text)
    (row,) = list(items)
    assert isinstance(row, Row)
    assert to_message(row) == BadRow(2, "not valid UTF-8")


def test_pacer_spaces_messages_by_the_rate() -> None:
    now = [100.0]
    pacer = Pacer(rate=4, clock=lambda: now[0])
    assert pacer.delay() == 0
    pacer.sent()
    assert pacer.delay() == pytest.approx(0.25)
    now[0] += 1.0  # behind schedule: no wait until back on the average rate
    pacer.sent()
    assert pacer.delay() == 0
    pacer.sent()
    pacer.sent()
    pacer.sent()
    assert pacer.delay() == pytest.approx(0.25)


def test_pacer_without_rate_never_waits() -> None:
    pacer = Pacer(rate=None)
    for _ in range(1000):
        assert pacer.delay() == 0
        pacer.sent()


def test_the_size_of_stdin_is_known_only_when_it_is_a_file(tmp_path: Path) -> None:
    probe = "from cli.emit import _stdin_lines; print(_stdin_lines())"
    data = tmp_path / "in.csv"
    data.write_text("a\nb\nc\n")
    with data.open("rb") as f:
        redirected = subprocess.run([sys.executable, "-c", probe], stdin=f, capture_output=True)
    piped = subprocess.run([sys.executable, "-c", probe], input=b"a\nb\n", capture_output=True)
    assert redirected.stdout.strip() == b"3"
    assert piped.stdout.strip() == b"None"
