"""Property tests: demux and every DEP, given adversarial values (``tests.adversarial``), either
produce their outputs and state or fail in a way the processors turn into a dead letter
(``common.faults.from_handler``): never a transient fault, never a bug, never a broken
connection. The DEPs run against real PostgreSQL, each in its own savepoint as the store
processor runs them."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from common import db
from common.codec import Codec
from common.deadletter import H_DETAIL, H_FAILED_AT, H_FIELD, H_REASON, H_STAGE
from common.faults import from_handler
from common.names import H_APP, H_STATUS
from common.runloop import Message
from common.settings import Settings
from common.store import StoreHandler
from common.topics import Topics
from common.transactional import Output
from demux.stage import Demux
from dep import registry
from tests.adversarial import LONE_SURROGATES, NASTY_TEXT, PROFILE, records
from tests.fakes import FakeMessage

CODEC = Codec()
OFFSETS = count()


def encoded(name: str, record: dict[str, Any]) -> bytes:
    try:
        return CODEC.encode(name, record)
    except Exception:  # no producer could have written it (a lone surrogate, a date out of range)
        assume(False)
        raise


def verdict(exc: BaseException) -> str:
    return "dead letter" if from_handler(exc) is not None else f"NOT a dead letter: {exc!r}"


def apply(handler: StoreHandler[Any], msg: Message, settings: Settings, conn: Any) -> None:
    """One message through a DEP as the store processor runs it."""
    try:
        event = handler.decode(msg)
    except Exception as exc:
        assert verdict(exc) == "dead letter"
        return
    with conn.transaction():
        cur = conn.cursor()
        try:
            with conn.transaction():
                handler.handle([event], cur)
        except Exception as exc:
            assert verdict(exc) == "dead letter"
    assert not conn.broken
    conn.execute("SELECT 1")


def consumers(settings: Settings) -> dict[str, list[str]]:
    """DE topic -> the DEPs that consume it."""
    topics = Topics(settings.namespace)
    by_topic: dict[str, list[str]] = {}
    for name, spec in registry.DEPS.items():
        for t in spec.topics(topics):
            by_topic.setdefault(t, []).append(name)
    return by_topic


@pytest.mark.parametrize("name", [n for n, s in registry.DEPS.items() if s.input_schemas], ids=str)
def test_a_dep_keeps_or_dead_letters_any_adversarial_de(name: str, settings: Settings) -> None:
    spec = registry.get(name)
    db.migrate(settings, registry.all_migrations())
    handler = spec.build(settings, CODEC)
    with db.connect(settings) as conn:

        @PROFILE
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            schema = data.draw(st.sampled_from(spec.input_schemas))
            value = encoded(schema, data.draw(records(schema)))
            apply(handler, FakeMessage(value, b"k", _offset=next(OFFSETS)), settings, conn)

        check()


def test_dead_letters_of_any_shape_reach_the_errors_table(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    handler = registry.get("collector-errors").build(settings, CODEC)
    names = [H_REASON, H_DETAIL, H_FIELD, H_STAGE, H_FAILED_AT, H_APP, H_STATUS]
    header_value = st.one_of(
        st.sampled_from([t.encode(errors="surrogatepass") for t in NASTY_TEXT + LONE_SURROGATES]),
        st.binary(max_size=100),
    )
    with db.connect(settings) as conn:

        @PROFILE
        @given(
            body=st.one_of(
                st.binary(max_size=2000), st.sampled_from([b"\x00" * 10, b"{" * 10_000])
            ),
            headers=st.lists(st.tuples(st.sampled_from(names), header_value), max_size=8),
        )
        def check(body: bytes, headers: list[tuple[str, bytes]]) -> None:
            msg = FakeMessage(body, None, _offset=next(OFFSETS), _headers=headers)
            apply(handler, msg, settings, conn)

        check()


def test_demux_then_its_deps_on_adversarial_canonical_events(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    demux = Demux(Topics(settings.namespace), CODEC)
    handlers = {n: s.build(settings, CODEC) for n, s in registry.DEPS.items()}
    by_topic = consumers(settings)
    with db.connect(settings) as conn:

        @PROFILE
        @given(record=records("canonical"))
        def check(record: dict[str, Any]) -> None:
            msg = FakeMessage(encoded("canonical", record), b"k", _offset=next(OFFSETS))
            try:
                outputs: Sequence[Output] = demux(msg)
            except Exception as exc:
                assert verdict(exc) == "dead letter"
                return
            for out in outputs:
                for name in by_topic.get(out.topic, []):
                    de = FakeMessage(out.value, out.key, _topic=out.topic, _offset=next(OFFSETS))
                    apply(handlers[name], de, settings, conn)

        check()
