"""``da sample learning`` and the JSON-lines input of ``da emit``: deterministic, the committed
file is the generator's output, and every message in it is one GEP accepts whole."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from cli.emit_input import BadRow, Message, read_jsonl
from cli.sample import write_jsonl
from cli.sample.learning import generate
from common.events import CanonicalEvent
from gep.formats import BY_NAME
from gep.formats.rejected import Rejected

SAMPLE_FILE = Path(__file__).resolve().parents[2] / "data" / "sample" / "learning.jsonl"


def _text(records: list[dict[str, object]]) -> str:
    out = io.StringIO()
    write_jsonl(records, out)
    return out.getvalue()


def test_the_same_seed_gives_the_same_file_and_the_committed_one_is_current() -> None:
    assert _text(generate(seed=7)) == _text(generate(seed=7)) != _text(generate(seed=8))
    assert SAMPLE_FILE.read_text() == _text(generate())
    assert SAMPLE_FILE.stat().st_size < 300_000


def test_a_class_in_every_format_and_every_message_is_valid() -> None:
    messages = [m for m in read_jsonl(io.StringIO(SAMPLE_FILE.read_text()))]
    assert all(isinstance(m, Message) for m in messages)
    formats = Counter(dict(m.headers)["da-format"] for m in messages if isinstance(m, Message))
    assert set(formats) == {
        b"gooru.logapi",
        b"gooru.logwriter",
        b"gooru.system",
        b"partner.edmobile",
    }
    events: list[CanonicalEvent] = []
    for m in messages:
        assert isinstance(m, Message)
        fmt = dict(m.headers)["da-format"]
        assert isinstance(fmt, bytes)
        parsed = BY_NAME[fmt.decode()].parse(m.value, datetime.now(UTC))
        assert not [p for p in parsed if isinstance(p, Rejected)], m.value
        events += [p for p in parsed if isinstance(p, CanonicalEvent)]
    learners = {e.usage.user_id for e in events if e.usage and e.usage.is_student}
    assert len(learners) == 25
    names = Counter(f"usage.{i.entity}.{i.metric}" for e in events for i in e.impacts)
    for de in (
        "usage.question.score",
        "usage.assessment.score",
        "usage.collection.view",
        "usage.collection.start",
        "usage.resource.reaction",
        "usage.assessment.reaction",
    ):
        assert names[de] > 0, de  # fmt: skip
    clamped = [e for e in events if e.usage and e.usage.metrics.time_spent_raw_ms]
    assert len(clamped) == 1
    assert any(e.usage and not e.usage.is_student for e in events)  # a teacher's preview


def test_json_lines_become_messages_byte_for_byte_and_odd_lines_are_bad() -> None:
    lines = [
        '{"format": "gooru.system", "key": "c1", "value": {"a":  [1, 2]}}',
        "",
        '{"key": "k", "text": "not json {"}',
        '{"key": "k", "value": 1, "text": "both"}',
        '{"key": "k", "valu": 1}',
        "[1, 2]",
    ]
    got = list(read_jsonl(io.StringIO("\n".join(lines) + "\n")))
    first, second = got[0], got[1]
    assert isinstance(first, Message) and isinstance(second, Message)
    assert (first.line, first.key, first.value) == (1, b"c1", b'{"a":  [1, 2]}')
    assert first.headers == [("da-format", b"gooru.system")]
    assert (second.line, second.value, second.headers) == (3, b"not json {", [])
    assert [b.line for b in got[2:] if isinstance(b, BadRow)] == [4, 5, 6]
    assert json.loads(first.value) == {"a": [1, 2]}
