"""The store processor's after-commit hook (step 5, where the outbox relay runs): it runs after
the batch is durable; a transient fault in it neither undoes nor repeats the batch, and it is
tried again by the run loop's turns even when no other message arrives; a bug in it still ends
the process."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest

from common import db
from common.deadletter import DeadLetterLimit
from common.errors import TransientError
from common.kafka import make_producer
from common.runloop import Message, Stopper, run
from common.settings import Settings
from common.store import Cursor, StoreProcessor
from tests.fakes import FakeConsumer, FakeMessage


class Keep:
    def decode(self, msg: Message) -> bytes:
        return msg.value() or b""

    def handle(self, events: Sequence[bytes], cur: Cursor) -> None:
        cur.executemany("INSERT INTO kept VALUES (%s)", [(e.decode(),) for e in events])


def _processor(settings: Settings, hook: object) -> tuple[StoreProcessor[bytes], FakeConsumer]:
    db.migrate(settings, [])
    with db.connect(settings) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.commit()
    consumer = FakeConsumer(
        {("de", 0): [FakeMessage(b"a", _topic="de"), FakeMessage(b"b", _topic="de", _offset=1)]}
    )
    proc: StoreProcessor[bytes] = StoreProcessor(
        "dep.x",
        "g",
        Keep(),
        lambda: db.connect(settings),
        make_producer(settings),
        "dlq",
        timeout_s=10,
        limit=DeadLetterLimit(0.5),
        stop=Stopper(),
        after_commit=hook,  # type: ignore[arg-type]
    )
    consumer.subscribe(["de"], on_assign=proc.assigned)
    return proc, consumer


def test_a_transient_fault_after_the_commit_keeps_the_batch(settings: Settings) -> None:
    seen: list[list[str]] = []

    def hook(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        seen.append([str(r[0]) for r in conn.execute("SELECT v FROM kept ORDER BY v")])
        raise TransientError("broker away")

    proc, consumer = _processor(settings, hook)
    proc.process(consumer, list(consumer.consume(10)))  # does not raise
    assert seen == [["a", "b"]]  # the hook saw the committed batch
    with db.connect(settings) as conn:
        assert conn.execute("SELECT next_offset FROM da_offsets").fetchall() == [(2,)]
    proc.close()


def test_a_failed_hook_is_tried_again_without_new_input(settings: Settings) -> None:
    outcomes: list[str] = []

    def hook(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        kept = [str(r[0]) for r in conn.execute("SELECT v FROM kept ORDER BY v")]
        if kept and "failed" not in outcomes:  # the first try after the last batch
            outcomes.append("failed")
            raise TransientError("broker away")
        outcomes.append(f"ran with {kept}")

    proc, consumer = _processor(settings, hook)
    consumer.at[("de", 0)] = 0  # _processor assigned it already: run() assigns again
    consumer.assigned.clear()
    run(consumer, proc, ["de"], batch_size=10, poll_timeout_s=0.05, stop=Stopper(), idle_stop_s=3)
    # After the batch (fails), and again on a later tick although nothing else arrived: what the
    # batch put in the outbox is not stranded.
    failed = outcomes.index("failed")
    assert "ran with ['a', 'b']" in outcomes[failed + 1 :]


def test_a_bug_after_the_commit_ends_the_process(settings: Settings) -> None:
    def hook(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        raise RuntimeError("bug")

    proc, consumer = _processor(settings, hook)
    with pytest.raises(RuntimeError):
        proc.process(consumer, list(consumer.consume(10)))
    proc.close()
