"""``da sample fulfillments``: deterministic, realistic, and the committed file is its output."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cli.emit_input import REQUIRED_COLUMNS
from cli.sample.fulfillments import COLUMNS, SampleRow, generate, write_csv

SAMPLE_FILE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fulfillments.csv"


def _csv(rows: list[SampleRow]) -> str:
    out = io.StringIO()
    write_csv(rows, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_csv(generate(seed=42, count=200)))))


def _at(row: dict[str, str]) -> datetime:
    return datetime.fromisoformat(row["created_at"])


def _by_fulfillment(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[row["fulfillment_id"]].append(row)
    return grouped


def test_same_seed_same_output_other_seed_other_output() -> None:
    assert _csv(generate(seed=7, count=30)) == _csv(generate(seed=7, count=30))
    assert _csv(generate(seed=7, count=30)) != _csv(generate(seed=8, count=30))


def test_committed_sample_is_seed_42() -> None:
    assert SAMPLE_FILE.read_text(encoding="utf-8") == _csv(generate(seed=42, count=200))


def test_columns_and_size(rows: list[dict[str, str]]) -> None:
    assert set(REQUIRED_COLUMNS) <= set(COLUMNS)
    assert 1000 <= len(rows) <= 1600
    assert len(_by_fulfillment(rows)) == 200
    for row in rows:
        assert list(row) == list(COLUMNS)
        assert all(row[c] for c in REQUIRED_COLUMNS), row
        assert len(row["fulfillment_id"]) == 8 and row["fulfillment_id"].isdigit()


def test_event_ids_unique_and_increasing_with_time(rows: list[dict[str, str]]) -> None:
    ids = [int(r["id"]) for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_both_timestamp_forms_appear(rows: list[dict[str, str]]) -> None:
    stamps = [r["created_at"] for r in rows]
    assert any(len(s) == 26 for s in stamps)  # YYYY-MM-DD HH:MM:SS.ffffff
    assert any(len(s) == 19 for s in stamps)  # YYYY-MM-DD HH:MM:SS
    assert all(len(s) in (19, 26) for s in stamps)


def test_rows_sorted_by_time_and_each_fulfillment_in_order(rows: list[dict[str, str]]) -> None:
    times = [_at(r) for r in rows]
    assert times == sorted(times)
    for events in _by_fulfillment(rows).values():
        times = [_at(e) for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert events[0]["type"] == "Event::Welcome"


def test_the_shapes_the_pipeline_must_handle(rows: list[dict[str, str]]) -> None:
    fulfillments = _by_fulfillment(rows)
    spans = [_at(e[-1]) - _at(e[0]) for e in fulfillments.values()]
    last_types = [e[-1]["type"] for e in fulfillments.values()]
    types_seen = [{r["type"] for r in e} for e in fulfillments.values()]
    assert any(span > timedelta(days=1) for span in spans)
    assert sum(_at(e[0]).date() != _at(e[-1]).date() for e in fulfillments.values()) >= 3
    # still open at the end of the export, in several states
    assert {"Event::LaunchEnd", "Event::Welcome"} <= set(last_types)
    assert sum(t != "Event::FulfillmentEnded" for t in last_types) >= 5
    # ended straight from WAITING
    assert any("Event::FulfillmentEnded" in t and "Event::LaunchStart" not in t for t in types_seen)
    # mostly complete, with non-trigger events among them
    assert last_types.count("Event::FulfillmentEnded") >= 150
    assert any(r["type"] == "Event::ChatMessage" for r in rows)
