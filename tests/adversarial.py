"""Hypothesis strategies for adversarial values, and records of any Avro schema built from them:
NUL, lone surrogates, huge strings, extreme and timezone-edge dates, deep nesting, huge numbers.

A record starts from one of its schema's examples (so it looks enough like the real thing to
reach deep into a handler) and has some fields replaced by adversarial values of their type.
``PROFILE`` fixes the seed and bounds the examples for ``make test``; ``DA_FUZZ_EXAMPLES`` and
``DA_FUZZ_RANDOM=1`` widen it for a longer run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from common.codec import SCHEMAS_DIR

PROFILE = settings(
    derandomize=os.environ.get("DA_FUZZ_RANDOM") != "1",
    max_examples=int(os.environ.get("DA_FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LONE_SURROGATES = ["\ud800", "a\udfffb", "\udc00" * 3]
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202e\u0000\ufeff",
    "x" * 100_000,
    "é" * 30_000,
    "[" * 5_000,
    "9" * 400,
    "-0",
    "NaN",
    "1e309",
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "null",
    "'; DROP TABLE x; --",
    "\\u0000",
    "%s%s%s",
]
# Avro strings are UTF-8 on the wire: a lone surrogate can never reach a stage inside one (it
# can inside JSON, which is what ``text`` is for).
avro_text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=50))
text = st.one_of(avro_text, st.sampled_from(LONE_SURROGATES))
huge_int = st.one_of(
    st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63)]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, float("inf"), float("-inf"), float("nan")]),
    st.floats(),
)
zones = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(-timedelta(hours=12)),
        timezone(timedelta(minutes=1)),
    ]
)
dates = st.one_of(
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=UTC),
            # Its conversion to UTC overflows: the GEP crash loop of the issue.
            datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        ]
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones),
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _timestamps(record: Any) -> Any:
    if isinstance(record, dict):
        return {k: _timestamps(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_timestamps(v) for v in record]
    if isinstance(record, str) and len(record) > 18 and record[4] == "-" and record[10] == "T":
        try:
            return datetime.fromisoformat(record)
        except ValueError:
            return record
    return record


def examples(name: str) -> list[dict[str, Any]]:
    """The newest version's examples of schema ``name`` (e.g. ``de/usage``)."""
    folder = SCHEMAS_DIR / name
    newest = max(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    return [
        _timestamps(r)
        for r in json.loads(Path(f"{newest.with_suffix('')}.example.json").read_text())
    ]


def schema(name: str) -> dict[str, Any]:
    folder = SCHEMAS_DIR / name
    newest = max(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    raw: dict[str, Any] = json.loads(newest.read_text())
    return raw


def of_type(avro: Any, example: Any = None) -> st.SearchStrategy[Any]:
    """Adversarial values of an Avro type (keeping ``example``'s shape where it has one)."""
    if isinstance(avro, list):  # a union: any branch
        return st.one_of([of_type(branch, example) for branch in avro])
    if isinstance(avro, str):
        avro = {"type": avro}
    kind, logical = avro["type"], avro.get("logicalType")
    if isinstance(kind, dict | list):
        return of_type(kind, example)
    if logical in ("timestamp-millis", "timestamp-micros"):
        return dates
    if kind == "null":
        return st.none()
    if kind == "string":
        return avro_text
    if kind in ("int", "long"):
        return huge_int
    if kind in ("float", "double"):
        return floats
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(of_type(avro["items"]), max_size=5)
    if kind == "map":
        return st.dictionaries(avro_text, of_type(avro["values"]), max_size=5)
    if kind == "record":
        return record(avro, example if isinstance(example, dict) else None)
    if kind == "enum":
        return st.sampled_from(avro["symbols"])
    return st.just(example)


def record(
    avro: dict[str, Any], example: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any]]:
    """The example with any of its fields replaced by an adversarial value of the field's type."""
    fields = {}
    for f in avro["fields"]:
        kept = (example or {}).get(f["name"], f.get("default"))
        adversarial = of_type(f["type"], kept)
        # Mostly the example's own value, so that the rest of the record still gets far.
        fields[f["name"]] = (
            st.one_of(st.just(kept), st.just(kept), st.just(kept), adversarial)
            if example is not None
            else adversarial
        )
    return st.fixed_dictionaries(fields)


def records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Records of schema ``name``: mostly its examples with a few fields made adversarial."""
    avro = schema(name)
    return st.sampled_from(examples(name)).flatmap(lambda ex: record(avro, ex))
