"""DEP ``collection-rollup``: the next level up (the demux emits the lowest only). From the
resource- and
question-level DEs of plays inside a *collection* it emits ``usage.collection.timespent``,
``usage.collection.reaction`` and ``usage.collection.score`` onto
``org.gooru.da.sink.dep.<bucket>``, where they are consumed like any other DE. (An assessment
has its own assessment-level DEs from the demux; a resource played alone has no collection.)

Time and reaction carry over one for one. A collection's score is per session: the mean of the
scores of the questions answered so far, with ``basis`` = how many, so a later, fuller score of
the session supersedes an earlier one downstream whatever order they arrive in.

Exactly once across PostgreSQL and Kafka: the DEs go into the outbox in the transaction that
records what was rolled up (``rollup_seen``, ``rollup_scores``); the store processor relays them.
Each emitted DE keeps its input's root event id, so its identity is unique and stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from common.codec import Codec
from common.events import UsageEvent
from common.names import dep_stage
from common.outbox import Outbox, OutboxMessage
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.topics import Topics
from dep.spec import DepSpec

NAME = "collection-rollup"
STAGE = dep_stage(NAME)
INPUTS = (
    "resource.timespent",
    "resource.reaction",
    "question.timespent",
    "question.reaction",
    "question.score",
)
EMITS = ("collection.timespent", "collection.reaction", "collection.score")
_KEY = "user_id, collection_id, class_id, course_id, unit_id, lesson_id, session_id"
SessionKey = tuple[str, str, str, str, str, str, str]


def _session(e: UsageEvent) -> SessionKey:
    return (
        e.user_id,
        e.collection_id or "",
        *e.context,
        e.session_id or e.lineage.root_event_id,
    )


class CollectionRollup:
    def __init__(self, codec: Codec, topics: Topics, max_hops: int) -> None:
        self.codec = codec
        self.topics = topics
        self.max_hops = max_hops
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> UsageEvent:
        return UsageEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[UsageEvent], cur: Cursor) -> None:
        inside = {e.identity: e for e in events if e.collection_type == "collection"}
        inside = {i: e for i, e in inside.items() if e.collection_id}
        if not inside:
            return
        cur.execute(
            "INSERT INTO rollup_seen (root_event_id, name) SELECT * FROM unnest(%s::text[], "
            "%s::text[]) ON CONFLICT DO NOTHING RETURNING root_event_id, name",
            ([i[0] for i in inside], [i[1] for i in inside]),
        )
        new = sorted((inside[(str(r), str(n))] for r, n in cur.fetchall()), key=_order)
        scores = self._load_scores(cur, sorted({_session(e) for e in new if _is_score(e)}))
        out = []
        for e in new:
            metric = e.name.rsplit(".", 1)[1]
            changes: dict[str, object] = {"collection_id": None, "collection_type": None}
            if metric == "score":
                answered, total, last = scores.get(_session(e), (0, 0.0, e.occurred_at))
                answered, total, last = answered + 1, total + e.value, max(last, e.occurred_at)
                scores[_session(e)] = (answered, total, last)
                changes |= {"value": total / answered, "basis": answered, "occurred_at": last}
            up = e.renamed(
                f"usage.collection.{metric}",
                e.collection_id or "",
                e.lineage.next_hop(STAGE, self.max_hops),
                **changes,
            )
            out.append(
                OutboxMessage(
                    self.topics.sink("dep", up.name),
                    up.key.encode(),
                    up.encode(self.codec),
                    (("da-de-name", up.name.encode()),),
                )
            )
        if scores:  # one row per session: one statement, the columns as binary arrays
            rows = [(*k, a, float(total), last) for k, (a, total, last) in sorted(scores.items())]
            cur.execute(
                f"INSERT INTO rollup_scores ({_KEY}, answered, score_sum, last_at) SELECT * FROM "
                "unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
                "%b::text[], %b::int[], %b::float8[], %b::timestamptz[]) ON CONFLICT "
                f"({_KEY}) DO UPDATE SET answered = EXCLUDED.answered, "
                "score_sum = EXCLUDED.score_sum, last_at = EXCLUDED.last_at",
                [list(col) for col in zip(*rows, strict=True)],
            )
        self.outbox.add(cur, out)

    def _load_scores(
        self, cur: Cursor, sessions: list[SessionKey]
    ) -> dict[SessionKey, tuple[int, float, datetime]]:
        """Lock and read the sessions' running scores. Two questions of one session may sit on
        two partitions (DEs are keyed by learner x question): the advisory locks, taken in
        order, make two instances take turns on a session instead of losing an answer."""
        if not sessions:
            return {}
        cols = [list(c) for c in zip(*sessions, strict=True)]
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(%s::text[]) AS k ORDER BY k",
            (sorted({"|".join(s) for s in sessions}),),
        )
        cur.execute(
            f"SELECT {_KEY}, answered, score_sum, last_at FROM rollup_scores WHERE ({_KEY}) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[]))",
            cols,
        )
        return {tuple(map(str, r[:7])): (int(str(r[7])), float(str(r[8])), r[9]) for r in cur}  # type: ignore[misc]


def _is_score(e: UsageEvent) -> bool:
    return e.name.endswith(".score")


def _order(e: UsageEvent) -> tuple[object, ...]:
    return (e.occurred_at, e.identity)


def build(settings: Settings, codec: Codec) -> CollectionRollup:
    return CollectionRollup(codec, Topics(settings.namespace), settings.max_hops)


SPEC = DepSpec(
    name=NAME,
    description="Rolls resource/question DEs in a collection up to usage.collection.* DEs",
    inputs=tuple(("demux", b) for b in INPUTS),
    tables=("rollup_seen", "rollup_scores"),
    migrations=Path(__file__).parent / "migrations" / "collection_rollup",
    input_schemas=("de/usage",),
    build=build,
    emits=tuple(("dep", b) for b in EMITS),
    emits_schema="de/usage",
    outbox=True,
)
