"""One bad message in a DEP's batch, on real Kafka and PostgreSQL: whatever makes it fail for
good (a value PostgreSQL refuses by SQLSTATE 22, 23 or 54, an exception its content raises in the
handler), it alone is dead-lettered with the reason, and the rest of the batch commits."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from common import db
from common.deadletter import H_DETAIL, H_REASON, header
from common.kafka import ensure_topics, make_producer
from common.launch import run_store
from common.runloop import Message, Stopper
from common.settings import Settings
from common.store import Cursor
from common.topics import Topics
from tests.kafka_read import read_topic

STAGE = "dep.scratch"


class Scratch:
    """Keeps each message's text in a table whose text key is indexed (as the errors table's
    ``app`` is), the way a DEP keeps state."""

    def decode(self, msg: Message) -> str:
        return (msg.value() or b"").decode()  # invalid UTF-8: UnicodeDecodeError

    def handle(self, events: Sequence[str], cur: Cursor) -> None:
        for text in events:
            if text.startswith("days:"):  # date arithmetic past year 9999: OverflowError
                datetime(9999, 12, 31) + timedelta(days=int(text[5:]))
            cur.execute("INSERT INTO scratch (k) VALUES (%s) ON CONFLICT DO NOTHING", (text,))


def test_each_deterministic_failure_dead_letters_only_its_message(settings: Settings) -> None:
    topic = Topics(settings.namespace).sink_bucket("demux", "scratch")
    dlq = Topics(settings.namespace).dead_letter(STAGE)
    ensure_topics(settings, [topic, dlq], partitions=1)
    db.migrate(settings, [])
    with db.connect(settings, autocommit=True) as conn:
        conn.execute("CREATE TABLE scratch (k text PRIMARY KEY)")
    bad = {
        # An index row too large: SQLSTATE 54000, an OperationalError that was retried forever.
        secrets.token_hex(5000).encode(): ("rejected_by_database", "54000"),
        b"nul\x00inside": ("rejected_by_database", "NUL"),  # psycopg refuses it: DataError
        b"days:2": ("unprocessable", "OverflowError"),
        b"\xff\xfe not UTF-8": ("unprocessable", "UnicodeDecodeError"),
    }
    good = [f"good-{i}".encode() for i in range(40)]
    values = good[:10] + list(bad)[:2] + good[10:30] + list(bad)[2:] + good[30:]
    producer = make_producer(settings)
    for v in values:
        producer.produce(topic, v)
    assert producer.flush(10) == 0

    stats = run_store(
        settings, STAGE, Scratch(), [topic], Stopper(), max_messages=len(values), idle_stop_s=20
    )

    assert stats.retries == 0  # never taken for a transient fault
    with db.connect(settings) as conn:
        kept = {str(r[0]) for r in conn.execute("SELECT k FROM scratch")}
        stored = conn.execute("SELECT next_offset FROM da_offsets").fetchall()
    assert kept == {g.decode() for g in good}
    assert stored == [(len(values),)]
    letters = read_topic(settings, dlq, expect=len(bad))
    got = {
        m.value(): (header(m.headers(), H_REASON), header(m.headers(), H_DETAIL)) for m in letters
    }
    assert len(letters) == len(bad) and set(got) == set(bad)
    for value, (reason, hint) in bad.items():
        assert got[value][0] == reason and hint in (got[value][1] or ""), got[value]
