"""DEP ``web-events``: the queryable table of every event posted to the collector.

``web_events`` holds each distinct event once (a client's resend has the same id); its indexes
serve the query API's filters by session, category and time, each in event-time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.codec import Codec
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.web_event import WEB_DE, WebEventDE
from dep.spec import DepSpec

_COLUMNS = "event_id, session_id, app, category, name, occurred_at, received_at, data"


class WebEvents:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def decode(self, msg: Message) -> WebEventDE:
        return WebEventDE.decode(self.codec, msg.value())

    def handle(self, events: Sequence[WebEventDE], cur: Cursor) -> None:
        distinct: dict[str, WebEventDE] = {}
        for e in events:
            distinct.setdefault(e.event_id, e)
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming_web_events "
            "(LIKE web_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE incoming_web_events")
        with cur.copy(f"COPY incoming_web_events ({_COLUMNS}) FROM STDIN") as copy:
            for e in distinct.values():
                copy.write_row(
                    (
                        e.event_id,
                        e.session_id,
                        e.app,
                        e.category,
                        e.event_name,
                        e.occurred_at,
                        e.received_at,
                        e.data,  # JSON text; PostgreSQL parses it into jsonb
                    )
                )
        cur.execute(
            f"INSERT INTO web_events ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming_web_events "
            "ON CONFLICT (event_id) DO NOTHING"
        )


def build(settings: Settings, codec: Codec) -> WebEvents:
    return WebEvents(codec)


SPEC = DepSpec(
    name="web-events",
    description="Events posted to the collector, queryable by session, category and time",
    inputs=(("demux", "web"),),
    tables=("web_events",),
    migrations=Path(__file__).parent / "migrations" / "web_events",
    input_schemas=(WEB_DE,),
    build=build,
)
