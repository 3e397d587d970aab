"""The content kind as sent: ``content_catalog`` keeps ``assessment-external``,
``offline-activity``, ... with the family beside it, from the raw system event through GEP,
the demux and the DEP; and the migration that adds the family leaves the rows written before it
correct: the family they stored, and the kind marked unknown where the family hid several."""

from __future__ import annotations

import json
from typing import Any

from common import db
from common.codec import Codec
from common.events import SystemEvent
from common.settings import Settings
from common.topics import Topics
from demux.stage import Demux
from dep import registry
from gep.stage import Gep
from tests.fakes import FakeMessage

CODEC = Codec()
CATALOG = "SELECT content_id, content_type, content_family, kind_exact FROM content_catalog"


def content(eid: str, cid: str, kind: str, at: int = 0) -> bytes:
    return json.dumps(
        {
            "eventId": eid,
            "eventName": "content.updated" if at else "content.created",
            "timestamp": 1_600_000_000_000 + at,
            "data": {"id": cid, "contentType": kind},
        }
    ).encode()


def apply(settings: Settings, raws: list[bytes]) -> None:
    topics = Topics(settings.namespace)
    gep, demux = Gep(topics, CODEC), Demux(topics, CODEC)
    des = [
        SystemEvent.decode(CODEC, d.value)
        for raw in raws
        for c in gep(FakeMessage(raw, _headers=[("da-format", b"gooru.system")]))
        for d in demux(FakeMessage(c.value))
    ]
    handler = registry.get("content-catalog").build(settings, CODEC)
    with db.connect(settings) as conn, conn.transaction():
        handler.handle(des, conn.cursor())


def rows(settings: Settings) -> set[tuple[Any, ...]]:
    with db.connect(settings) as conn:
        return set(conn.execute(CATALOG).fetchall())


def test_the_catalog_keeps_the_kind_as_sent_and_its_family(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    kinds = ["assessment-external", "offline-activity", "collection-external", "question"]
    apply(settings, [content(f"e{i}", f"x{i}", k) for i, k in enumerate(kinds)])
    assert rows(settings) == {
        ("x0", "assessment-external", "assessment", True),
        ("x1", "offline-activity", "assessment", True),
        ("x2", "collection-external", "collection", True),
        ("x3", "question", "question", True),
    }


def test_the_migration_keeps_old_rows_family_and_marks_the_kinds_it_cannot_know(
    settings: Settings,
) -> None:
    new = "content-catalog/002_kind_as_sent.sql"
    db.migrate(settings, [m for m in registry.all_migrations() if m.name != new])
    with db.connect(settings) as conn:  # rows as the catalog wrote them before: the family
        conn.execute(
            "INSERT INTO content_catalog (content_id, content_type, changed_at, event_id, deleted) "
            "VALUES ('a', 'assessment', now(), 'e1', false), "
            "('c', 'collection', now(), 'e2', false), ('q', 'question', now(), 'e3', false), "
            "('r', 'resource', now(), 'e4', false), ('gone', NULL, now(), 'e5', true)"
        )
        conn.commit()
    assert db.migrate(settings, registry.all_migrations()) == [new]
    assert rows(settings) == {
        ("a", "assessment", "assessment", False),  # was it external, an offline activity?
        ("c", "collection", "collection", False),
        ("q", "question", "question", True),  # a family of one kind: exact
        ("r", "resource", "resource", True),
        ("gone", None, None, True),
    }
    apply(settings, [content("e9", "a", "offline-activity", at=5)])  # its next change tells
    assert ("a", "offline-activity", "assessment", True) in rows(settings)
