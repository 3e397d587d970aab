"""The chaos run's poison gets, from every stage that consumes its topic, exactly the dead-letter
reason the run's verdict counts on: GEP's and demux's handlers, and each DEP's decode and handler
against a real PostgreSQL, in a savepoint as the store processor runs them. The chaos run then
only has to count; a reason that drifts fails here, in seconds."""

from __future__ import annotations

from typing import Any

from common import db
from common.codec import Codec
from common.deadletter import record_size
from common.faults import from_handler
from common.names import DEMUX, GEP
from common.settings import Settings
from common.topics import Topics
from demux.stage import Demux
from dep import registry
from gep.stage import Gep
from tests.chaos.mixed import COMMANDS
from tests.chaos.poison import Poison, targets
from tests.fakes import FakeMessage

CODEC = Codec()
RUNNING = [c[2] for c in COMMANDS.values() if c[0] == "dep"]


def reason(stage: str, poison: Poison, settings: Settings, conn: Any) -> str:
    """The dead-letter reason ``stage`` gives the poison, or what went wrong instead."""
    topics = Topics(settings.namespace)
    headers = [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in poison.headers]
    msg = FakeMessage(poison.body(7), b"poison", _topic=poison.topic, _headers=headers or None)
    try:
        if stage in (GEP, DEMUX):
            transform = Gep(topics, CODEC, settings.max_message_bytes) if stage == GEP else None
            outputs = (transform or Demux(topics, CODEC))(msg)
            sizes = [record_size(o.key, o.value, o.headers or ()) for o in outputs]
            return "too_large" if max(sizes) > settings.max_message_bytes else "passed"
        handler = registry.get(stage.removeprefix("dep.")).build(settings, CODEC)
        event = handler.decode(msg)
        with conn.transaction(force_rollback=True), conn.transaction():
            handler.handle([event], conn.cursor())
        return "stored"
    except Exception as exc:  # what the processors do with it: a dead letter, or not
        invalid = from_handler(exc)
        return invalid.reason if invalid is not None else f"not a dead letter: {exc!r}"


def test_every_poison_class_reaches_every_consuming_stage() -> None:
    poison = targets(Topics("t"), RUNNING, 1_000_000)
    stages = {s for p in poison for s, _ in p.letters}
    assert stages == {GEP, DEMUX} | {f"dep.{d}" for d in RUNNING}
    assert all(p.letters for p in poison), [p.kind for p in poison if not p.letters]
    # No poison is a repeat of an earlier one on its topic.
    assert all(p.body(1) != p.body(2) for p in poison), [p.kind for p in poison]


def test_each_stage_gives_each_poison_its_reason(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    wrong = []
    with db.connect(settings) as conn:
        for poison in targets(Topics(settings.namespace), RUNNING, settings.max_message_bytes):
            for stage, due in poison.letters:
                got = reason(stage, poison, settings, conn)
                if got != due:
                    wrong.append(f"{poison.kind} at {stage}: {got}, not {due}")
            assert not conn.broken
    assert wrong == []
