"""DEP ``usage-metrics``: per learner x content x class/course/unit/lesson, the total time spent,
views, starts, the latest and best score and the latest reaction, from every usage DE (the
demux's and the collection roll-up's).

Correct under duplicates and replays: a DE is applied once, by identity (``usage_seen``). Sums
add; a latest value is replaced only by a newer one in event time (ties broken by event id), so
an older event never overwrites a newer one. A score belongs to a session; the session's newest,
fullest score counts (a roll-up's score grows with each question answered).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.codec import Codec
from common.events import UsageEvent
from common.events.learning import USAGE_DE_NAMES
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from dep.spec import DepSpec

ROLLED_UP = ("collection.timespent", "collection.score", "collection.reaction")
_KEY = "user_id, content_id, class_id, course_id, unit_id, lesson_id"

# One statement per batch for each table (rows already one per key: a statement cannot touch a
# row twice), the columns as binary arrays.
_KEYS = "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[]"
_ADD = f"""
INSERT INTO usage_metrics AS m ({_KEY}, time_spent_ms, views, starts,
    latest_reaction, reaction_at, reaction_event_id)
SELECT * FROM unnest({_KEYS}, %b::bigint[], %b::int[], %b::int[], %b::int[], %b::timestamptz[],
                     %b::text[])
ON CONFLICT ({_KEY}) DO UPDATE SET
    time_spent_ms = m.time_spent_ms + EXCLUDED.time_spent_ms,
    views = m.views + EXCLUDED.views,
    starts = m.starts + EXCLUDED.starts,
    (latest_reaction, reaction_at, reaction_event_id) = (
        SELECT CASE WHEN newer THEN EXCLUDED.latest_reaction ELSE m.latest_reaction END,
               CASE WHEN newer THEN EXCLUDED.reaction_at ELSE m.reaction_at END,
               CASE WHEN newer THEN EXCLUDED.reaction_event_id ELSE m.reaction_event_id END
        FROM (SELECT EXCLUDED.reaction_at IS NOT NULL AND (m.reaction_at IS NULL OR
              (EXCLUDED.reaction_at, EXCLUDED.reaction_event_id)
              > (m.reaction_at, m.reaction_event_id)) AS newer) n),
    updated_at = now()
"""
_SCORE = f"""
INSERT INTO usage_scores AS s ({_KEY}, session_id, score, basis, scored_at, event_id)
SELECT * FROM unnest({_KEYS}, %b::text[], %b::float8[], %b::int[], %b::timestamptz[], %b::text[])
ON CONFLICT ({_KEY}, session_id) DO UPDATE SET
    score = EXCLUDED.score, basis = EXCLUDED.basis, scored_at = EXCLUDED.scored_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.scored_at, EXCLUDED.basis, EXCLUDED.event_id) > (s.scored_at, s.basis, s.event_id)
"""
_RESCORE = f"""
UPDATE usage_metrics m SET latest_score = x.latest, best_score = x.best, updated_at = now()
FROM (
    SELECT {_KEY}, max(score) AS best,
           (array_agg(score ORDER BY scored_at DESC, basis DESC, event_id DESC))[1] AS latest
    FROM usage_scores
    WHERE ({_KEY}) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],
                                            %s::text[], %s::text[]))
    GROUP BY {_KEY}
) x
WHERE (m.user_id, m.content_id, m.class_id, m.course_id, m.unit_id, m.lesson_id)
    = (x.user_id, x.content_id, x.class_id, x.course_id, x.unit_id, x.lesson_id)
"""

Key = tuple[str, str, str, str, str, str]


def _key(e: UsageEvent) -> Key:
    return (e.user_id, e.content_id, *e.context)


def _newer(a: UsageEvent, b: UsageEvent | None) -> bool:
    return b is None or (a.occurred_at, a.basis, a.event_id) > (b.occurred_at, b.basis, b.event_id)


class UsageMetrics:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def decode(self, msg: Message) -> UsageEvent:
        return UsageEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[UsageEvent], cur: Cursor) -> None:
        distinct = {e.identity: e for e in events}
        cur.execute(
            "INSERT INTO usage_seen (root_event_id, name) SELECT * FROM unnest(%s::text[], "
            "%s::text[]) ON CONFLICT DO NOTHING RETURNING root_event_id, name",
            ([i[0] for i in distinct], [i[1] for i in distinct]),
        )
        new = [distinct[(str(r), str(n))] for r, n in cur.fetchall()]
        sums: dict[Key, list[int]] = {}  # time spent, views, starts
        reaction: dict[Key, UsageEvent] = {}
        scores: dict[tuple[Key, str], UsageEvent] = {}
        for e in sorted(new, key=lambda e: e.identity):
            key, metric = _key(e), e.name.rsplit(".", 1)[1]
            acc = sums.setdefault(key, [0, 0, 0])
            if metric == "timespent":
                acc[0] += round(e.value)
            elif metric == "view":
                acc[1] += round(e.value)
            elif metric == "start":
                acc[2] += 1
            elif metric == "reaction" and _newer(e, reaction.get(key)):
                reaction[key] = e
            elif metric == "score":
                session = (key, e.session_id or e.lineage.root_event_id)
                if _newer(e, scores.get(session)):
                    scores[session] = e
        _columns(
            cur,
            _ADD,
            [
                (
                    *key,
                    *acc,
                    *(
                        (round(r.value), r.occurred_at, r.event_id)
                        if (r := reaction.get(key))
                        else (None, None, None)
                    ),
                )
                for key, acc in sorted(sums.items())
            ],
        )
        if not scores:
            return
        _columns(
            cur,
            _SCORE,
            [
                (*key, session, float(e.value), e.basis, e.occurred_at, e.event_id)
                for (key, session), e in sorted(scores.items(), key=lambda kv: kv[0])
            ],
        )
        keys = sorted({key for key, _ in scores})
        cur.execute(_RESCORE, [list(col) for col in zip(*keys, strict=True)])


def _columns(cur: Cursor, statement: str, rows: list[tuple[object, ...]]) -> None:
    if rows:
        cur.execute(statement, [list(col) for col in zip(*rows, strict=True)])


def build(settings: Settings, codec: Codec) -> UsageMetrics:
    return UsageMetrics(codec)


SPEC = DepSpec(
    name="usage-metrics",
    description="Per learner x content x context: time spent, views, starts, scores, reaction",
    inputs=tuple(("demux", n.removeprefix("usage.")) for n in USAGE_DE_NAMES)
    + tuple(("dep", b) for b in ROLLED_UP),
    tables=("usage_seen", "usage_metrics", "usage_scores"),
    migrations=Path(__file__).parent / "migrations" / "usage_metrics",
    input_schemas=("de/usage",),
    build=build,
)
