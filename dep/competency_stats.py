"""DEP ``competency-stats``: fans assessment and collection scores out to the competencies of
that content and keeps, per learner x competency, the scored attempts, the latest and the best.

The ordering constraint of learning events lives here: a score for content this DEP has no
metadata for yet is *parked* (``common.parking``), released and applied in the transaction that
brings the content's ``content.created``/``updated`` DE, and dead-lettered through the outbox after
``DA_PARK_TIMEOUT_S``, on the run loop's tick (``common.ticks``), so also when nothing arrives. An
advisory lock per content id serializes the two paths, so a score parked by one instance while
another stores the metadata is never stranded.

Every scored session is kept per content (``competency_sessions``) as well as per competency:
when a content's competencies change, its sessions are fanned out again, so the stats follow the
content's newest metadata whatever order scores and changes arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from common import parking
from common.codec import Codec
from common.events import SystemEvent, UsageEvent
from common.names import dep_stage
from common.outbox import Outbox
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.ticks import Owned, ReadTo
from common.topics import Topics
from dep.spec import DepSpec

NAME = "competency-stats"
STAGE = dep_stage(NAME)
Event = UsageEvent | SystemEvent

_CONTENT = """
INSERT INTO competency_content AS c (content_id, competencies, changed_at, event_id)
VALUES (%s, %s, %s, %s) ON CONFLICT (content_id) DO UPDATE SET
    competencies = EXCLUDED.competencies, changed_at = EXCLUDED.changed_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.changed_at, EXCLUDED.event_id) > (c.changed_at, c.event_id)
"""
# One statement per batch, not one per row: the rows are distinct by key (sessions are, and a
# content's competencies are stored deduplicated), which a set-based ON CONFLICT DO UPDATE needs.
_SCORE = """
INSERT INTO competency_scores AS s (user_id, competency, content_id, session_id, score, basis,
    scored_at, event_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::int[],
                     %s::timestamptz[], %s::text[])
ON CONFLICT (user_id, competency, content_id, session_id) DO UPDATE SET
    score = EXCLUDED.score, basis = EXCLUDED.basis, scored_at = EXCLUDED.scored_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.scored_at, EXCLUDED.basis, EXCLUDED.event_id) > (s.scored_at, s.basis, s.event_id)
"""
_SESSION = """
INSERT INTO competency_sessions AS s (user_id, content_id, session_id, score, basis, scored_at,
    event_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::int[],
                     %s::timestamptz[], %s::text[])
ON CONFLICT (user_id, content_id, session_id) DO UPDATE SET
    score = EXCLUDED.score, basis = EXCLUDED.basis, scored_at = EXCLUDED.scored_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.scored_at, EXCLUDED.basis, EXCLUDED.event_id) > (s.scored_at, s.basis, s.event_id)
"""
_REFAN = """
INSERT INTO competency_scores (user_id, competency, content_id, session_id, score, basis,
    scored_at, event_id)
SELECT s.user_id, k.competency, s.content_id, s.session_id, s.score, s.basis, s.scored_at,
    s.event_id
FROM competency_sessions s JOIN competency_content c USING (content_id),
    LATERAL (SELECT DISTINCT unnest(c.competencies)) AS k(competency)
WHERE s.content_id = ANY(%s)
RETURNING user_id, competency
"""
_STATS = """
INSERT INTO competency_stats (user_id, competency, attempts, latest_score, best_score)
SELECT user_id, competency, count(*), (array_agg(score ORDER BY scored_at DESC, basis DESC,
       event_id DESC))[1], max(score)
FROM competency_scores
WHERE (user_id, competency) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
GROUP BY user_id, competency
ON CONFLICT (user_id, competency) DO UPDATE SET attempts = EXCLUDED.attempts,
    latest_score = EXCLUDED.latest_score, best_score = EXCLUDED.best_score, updated_at = now()
"""
_UNSCORED = """
DELETE FROM competency_stats t
WHERE (t.user_id, t.competency) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
  AND NOT EXISTS (SELECT 1 FROM competency_scores s
                  WHERE (s.user_id, s.competency) = (t.user_id, t.competency))
"""


class CompetencyStats:
    def __init__(self, codec: Codec, topics: Topics, park_timeout_s: float) -> None:
        self.codec = codec
        self.system_topic = topics.sink_bucket("demux", "content")
        self.dead_letter_topic = topics.dead_letter(STAGE)
        self.park_timeout_s = park_timeout_s
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> Event:
        if msg.topic() == self.system_topic:
            return SystemEvent.decode(self.codec, msg.value())
        return UsageEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[Event], cur: Cursor) -> None:
        changes = [e for e in events if isinstance(e, SystemEvent) and e.action != "deleted"]
        scores = [e for e in events if isinstance(e, UsageEvent)]
        contents = sorted({e.entity_id for e in changes} | {e.content_id for e in scores})
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('content|' || c)) "
            "FROM unnest(%s::text[]) AS c ORDER BY c",
            (contents,),
        )
        newest: dict[str, SystemEvent] = {}
        for e in changes:
            old = newest.get(e.entity_id)
            if old is None or (e.occurred_at, e.event_id) > (old.occurred_at, old.event_id):
                newest[e.entity_id] = e
        before = _competencies(cur, sorted(newest))
        cur.executemany(
            _CONTENT,
            # A competency named twice is one competency: stored once, a score counts once.
            [
                (c, list(dict.fromkeys(e.competencies)), e.occurred_at, e.event_id)
                for c, e in newest.items()
            ],
        )
        after = _competencies(cur, sorted(before))
        _refan(cur, sorted(c for c in before if before[c] != after[c]))
        released = parking.release(cur, NAME, sorted(newest))
        scores += [UsageEvent.decode(self.codec, bytes(p.value)) for p in released]
        self._apply(scores, cur)

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None:
        """Scores parked longer than the timeout become dead letters, on time even when nothing
        arrives (the parking is not per partition: any instance that owns a partition expires,
        and each parked row is deleted by one transaction only)."""
        self.outbox.add(
            cur,
            parking.expire(cur, NAME, STAGE, self.dead_letter_topic, self.park_timeout_s),
        )

    def _apply(self, scores: list[UsageEvent], cur: Cursor) -> None:
        distinct = {e.identity: e for e in scores}
        if not distinct:
            return
        known = _competencies(cur, sorted({e.content_id for e in distinct.values()}))
        waiting = [e for e in distinct.values() if e.content_id not in known]
        for e in waiting:
            identity = f"{e.identity[0]}|{e.identity[1]}"
            parking.park(cur, NAME, e.content_id, identity, e.key.encode(), e.encode(self.codec))
        ready = [i for i, e in distinct.items() if e.content_id in known]
        cur.execute(
            "INSERT INTO competency_seen (root_event_id, name) SELECT * FROM unnest(%s::text[], "
            "%s::text[]) ON CONFLICT DO NOTHING RETURNING root_event_id, name",
            ([i[0] for i in ready], [i[1] for i in ready]),
        )
        sessions: dict[tuple[str, str, str], UsageEvent] = {}
        for r, n in cur.fetchall():
            e = distinct[(str(r), str(n))]
            k = (e.user_id, e.content_id, e.session_id or e.lineage.root_event_id)
            old = sessions.get(k)
            if old is None or (e.occurred_at, e.basis, e.event_id) > (
                old.occurred_at,
                old.basis,
                old.event_id,
            ):
                sessions[k] = e
        if not sessions:
            return
        rows = [
            (*k, e.value, e.basis, e.occurred_at, e.event_id) for k, e in sorted(sessions.items())
        ]
        cur.execute(_SESSION, [list(col) for col in zip(*rows, strict=True)])
        # Deduplicated again for rows stored before the list was.
        fanned = [(u, k, c, *rest) for u, c, *rest in rows for k in dict.fromkeys(known[c])]
        if fanned:
            cur.execute(_SCORE, [list(col) for col in zip(*fanned, strict=True)])
        _restat(cur, {(u, k) for u, c, *_ in rows for k in known[c]})


def _competencies(cur: Cursor, contents: list[str]) -> dict[str, list[str]]:
    cur.execute(
        "SELECT content_id, competencies FROM competency_content WHERE content_id = ANY(%s)",
        (contents,),
    )
    return {str(c): list(k) for c, k in cur.fetchall()}  # type: ignore[call-overload]


def _refan(cur: Cursor, contents: list[str]) -> None:
    """Fan the scored sessions of contents whose competencies changed out again."""
    if not contents:
        return
    cur.execute(
        "DELETE FROM competency_scores WHERE content_id = ANY(%s) RETURNING user_id, competency",
        (contents,),
    )
    pairs = {(str(u), str(k)) for u, k in cur.fetchall()}
    cur.execute(_REFAN, (contents,))
    _restat(cur, pairs | {(str(u), str(k)) for u, k in cur.fetchall()})


def _restat(cur: Cursor, pairs: set[tuple[str, str]]) -> None:
    """Recompute the stats of these learner x competency pairs from their scores."""
    users, competencies = [p[0] for p in sorted(pairs)], [p[1] for p in sorted(pairs)]
    cur.execute(_STATS, (users, competencies))
    cur.execute(_UNSCORED, (users, competencies))


def build(settings: Settings, codec: Codec) -> CompetencyStats:
    return CompetencyStats(codec, Topics(settings.namespace), settings.park_timeout_s)


SPEC = DepSpec(
    name=NAME,
    description="Assessment and collection scores fanned out to competencies, per learner",
    inputs=(("demux", "assessment.score"), ("dep", "collection.score"), ("demux", "content")),
    tables=(
        "competency_content",
        "competency_seen",
        "competency_sessions",
        "competency_scores",
        "competency_stats",
    ),
    migrations=Path(__file__).parent / "migrations" / "competency_stats",
    input_schemas=("de/usage", "de/system"),
    build=build,
    outbox=True,
    # Its outbox holds dead letters (expired parked scores), which nobody dedupes: exactly once.
    outbox_exactly_once=True,
)
