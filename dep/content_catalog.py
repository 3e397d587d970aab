"""DEP ``content-catalog``: content metadata (kind as sent and its family, parent collection,
competencies, title) from the ``content.<action>`` system DEs, newest in event time winning, a
delete kept as a flag.

Idempotent by construction: applying a DE again, or an older one after a newer, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.codec import Codec
from common.events import CONTENT_FAMILIES, SystemEvent
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from dep.spec import DepSpec

_UPSERT = """
INSERT INTO content_catalog AS c (content_id, content_type, content_family, kind_exact,
    parent_id, competencies, title, meta_at, meta_event_id, deleted, changed_at, event_id)
VALUES (%(id)s, %(type)s, %(family)s, true, %(parent)s, %(comp)s, %(title)s, %(meta_at)s,
    %(meta_id)s, %(deleted)s, %(at)s, %(event_id)s)
ON CONFLICT (content_id) DO UPDATE SET
    (content_type, content_family, kind_exact, parent_id, competencies, title, meta_at,
     meta_event_id) = (
        SELECT CASE WHEN newer THEN EXCLUDED.content_type ELSE c.content_type END,
               CASE WHEN newer THEN EXCLUDED.content_family ELSE c.content_family END,
               CASE WHEN newer THEN true ELSE c.kind_exact END,
               CASE WHEN newer THEN EXCLUDED.parent_id ELSE c.parent_id END,
               CASE WHEN newer THEN EXCLUDED.competencies ELSE c.competencies END,
               CASE WHEN newer THEN EXCLUDED.title ELSE c.title END,
               CASE WHEN newer THEN EXCLUDED.meta_at ELSE c.meta_at END,
               CASE WHEN newer THEN EXCLUDED.meta_event_id ELSE c.meta_event_id END
        FROM (SELECT EXCLUDED.meta_at IS NOT NULL AND (c.meta_at IS NULL OR
              (EXCLUDED.meta_at, EXCLUDED.meta_event_id) > (c.meta_at, c.meta_event_id))
              AS newer) n),
    (deleted, changed_at, event_id) = (
        SELECT CASE WHEN newer THEN EXCLUDED.deleted ELSE c.deleted END,
               CASE WHEN newer THEN EXCLUDED.changed_at ELSE c.changed_at END,
               CASE WHEN newer THEN EXCLUDED.event_id ELSE c.event_id END
        FROM (SELECT (EXCLUDED.changed_at, EXCLUDED.event_id) > (c.changed_at, c.event_id)
              AS newer) n),
    updated_at = now()
"""


def _order(e: SystemEvent) -> tuple[object, ...]:
    return (e.occurred_at, e.event_id.encode())  # bytes order = PostgreSQL's "C" collation


def merge(events: Sequence[SystemEvent]) -> list[dict[str, object]]:
    """One row per content (one statement cannot update a row twice): its newest metadata and
    its newest change among these events."""
    by_content: dict[str, list[SystemEvent]] = {}
    for e in events:
        if e.entity == "content":
            by_content.setdefault(e.entity_id, []).append(e)
    rows: list[dict[str, object]] = []
    for content_id, evs in sorted(by_content.items()):
        newest = max(evs, key=_order)
        metas = [e for e in evs if e.action != "deleted"]
        meta = max(metas, key=_order) if metas else None
        rows.append(
            {
                "id": content_id,
                "type": meta.content_type if meta else None,
                "family": CONTENT_FAMILIES.get(meta.content_type or "") if meta else None,
                "parent": meta.parent_id if meta else None,
                "comp": list(meta.competencies) if meta else [],
                "title": meta.attributes.get("title") if meta else None,
                "meta_at": meta.occurred_at if meta else None,
                "meta_id": meta.event_id if meta else None,
                "deleted": newest.action == "deleted",
                "at": newest.occurred_at,
                "event_id": newest.event_id,
            }
        )
    return rows


class ContentCatalog:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def decode(self, msg: Message) -> SystemEvent:
        return SystemEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[SystemEvent], cur: Cursor) -> None:
        cur.executemany(_UPSERT, merge(events))


def build(settings: Settings, codec: Codec) -> ContentCatalog:
    return ContentCatalog(codec)


SPEC = DepSpec(
    name="content-catalog",
    description="Content metadata (kind, parent, competencies) from content system DEs",
    inputs=(("demux", "content"),),
    tables=("content_catalog",),
    migrations=Path(__file__).parent / "migrations" / "content_catalog",
    input_schemas=("de/system",),
    build=build,
)
