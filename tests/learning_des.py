"""The first half of the learning oracle (``tests.learning_oracle``): the DEs each raw message
must become, written from ``docs/formats.md`` (the platform parser's rules and the event
processor's routing, the EdMobile mapping table, the system events, the table of which raw event
counts for each metric) and the lowest dimension only, not from ``gep`` or ``demux``.
Scores are percentages (a question: correct 100, incorrect/attempted 0). The metric rules, in
terms of what the learner did, whichever format says it:
- a start (``usage.collection.start``): began playing a collection or an assessment, any kind;
- a view of a collection: opened it (its start); a view of an assessment: finished an attempt;
- time spent, scores: the end of a play, never a collection's own (the roll-up derives those);
- a reaction: whenever given, to whatever content (a collection's too).
Times are integer epoch milliseconds throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_MS = 7_200_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOLD = {
    "collection-external": "collection",
    "assessment-external": "assessment",
    "offline-activity": "assessment",
}
OUTCOME = {"right": "correct", "wrong": "incorrect", "skipped": "skipped"}
EDMOBILE = {
    "video": ("collection.resource.play", "resource"),
    "reading": ("collection.resource.play", "resource"),
    "quiz-item": ("collection.resource.play", "question"),
    "quiz": ("collection.play", "assessment"),
    "lesson": ("collection.play", "collection"),
}
J = dict[str, Any]


@dataclass(frozen=True, order=True)
class De:
    """A usage DE as compared: everything but the session (see ``session``)."""

    name: str
    root: str
    user: str
    content: str
    value: float
    at_ms: int
    context: tuple[str, str, str, str]  # class, course, unit, lesson ('' when absent)
    collection: str | None = None
    collection_type: str | None = None
    clamped: bool = False
    session: str = field(default="", compare=False)  # the play's session, or the event id


def fold(kind: str | None) -> str:
    return FOLD.get(kind or "", kind or "")


def _context(ctx: J, suffix: str) -> tuple[str, str, str, str]:
    """Class, course, unit, lesson; '' where absent (independent learning)."""
    c, o, u, n = (str(ctx.get(f"{k}{suffix}") or "") for k in ("class", "course", "unit", "lesson"))
    return (c, o, u, n)


def _score(status: str | None) -> float | None:
    return {"correct": 100.0, "incorrect": 0.0, "attempted": 0.0}.get(status or "")


def _clamp(ms: int) -> tuple[int, bool]:
    return (min(max(ms, 0), MAX_MS), not 0 <= ms <= MAX_MS)


def logapi(e: J) -> list[De]:
    ctx, pay = e.get("context") or {}, e.get("payLoadObject") or {}
    if pay.get("isStudent") is False:
        return []  # a teacher's preview
    name, typ, content = e["eventName"], ctx.get("type"), ctx["contentGooruId"]
    session = (e.get("session") or {}).get("sessionId") or e["eventId"]
    parent, ptype = ctx.get("parentGooruId"), fold(ctx.get("collectionType"))
    context = _context(ctx, "GooruId")

    def de(kind: str, metric: str, value: float, at: int, clamped: bool = False) -> De:
        item = kind in ("resource", "question")
        return De(
            f"usage.{kind}.{metric}",
            e["eventId"],
            e["user"]["gooruUId"],
            content,
            value,
            at,
            context,
            parent if item else None,
            ptype if item and parent else None,
            clamped,
            session,
        )

    if name == "reaction.create":
        kind = ctx.get("resourceType") or (ptype if not parent else "resource")
        return [de(kind, "reaction", float(ctx["reactionType"]), e["startTime"])]
    if name == "collection.play":
        kind = fold(ctx["collectionType"])
        if typ == "start":
            began = [de("collection", "start", 1, e["startTime"])]
            if kind == "collection":
                began.append(de("collection", "view", 1, e["startTime"]))
            return began
        if kind == "collection":
            return []  # option 2: the roll-up derives a collection's time and score
        spent, clamped = _clamp(e["endTime"] - e["startTime"])
        out = [
            de("assessment", "timespent", spent, e["endTime"], clamped),
            de("assessment", "view", 1, e["endTime"]),
        ]
        score = (e.get("metrics") or {}).get("score")
        return out + ([de("assessment", "score", score, e["endTime"])] if score is not None else [])
    if typ != "stop":
        return []
    kind = ctx.get("resourceType") or "resource"
    spent, clamped = _clamp(e["endTime"] - e["startTime"])
    out = [de(kind, "timespent", spent, e["endTime"], clamped)]
    score = _score(pay.get("answerStatus")) if kind == "question" else None
    return out + ([de(kind, "score", score, e["endTime"])] if score is not None else [])


def logwriter(e: J) -> list[De]:
    if e.get("isStudent") is False:
        return []
    ctx, res, name = e.get("context") or {}, e.get("result") or {}, e["eventName"]
    coll = str(e.get("collectionId") or ctx.get("collectionId"))
    ctype = fold(e.get("collectionType") or ctx.get("collectionType"))
    context = _context(ctx, "Id")
    on_item = name.startswith("resource.")
    kind = e["resourceType"] if on_item else ctype
    content = e["resourceId"] if on_item else coll

    def de(metric: str, value: float, clamped: bool = False, k: str | None = None) -> De:
        return De(
            f"usage.{k or kind}.{metric}",
            e["eventId"],
            e["userId"],
            content,
            value,
            e["activityTime"],
            context,
            coll if on_item else None,
            ctype if on_item else None,
            clamped,
            ctx.get("sessionId") or e["eventId"],
        )

    if name == "collection.start":
        began = [de("start", 1, k="collection")]
        return began + ([de("view", 1, k="collection")] if kind == "collection" else [])
    score = res.get("score")
    if score is None and kind == "question":
        score = _score(res.get("answerStatus"))
    scored = (
        [de("score", score)] if score is not None and kind in ("question", "assessment") else []
    )
    if name.endswith(".score.update"):
        return scored
    reacted = [de("reaction", res["reaction"])] if res.get("reaction") else []
    if kind == "collection":
        return reacted  # option 2, as for the log API: no time or score of its own
    spent, clamped = _clamp(res["timeSpent"])
    out = [de("timespent", spent, clamped), *scored]
    if kind == "assessment":
        out.append(de("view", 1))
    return out + reacted


def edmobile_to_logapi(a: J) -> list[J]:
    """docs/formats.md's mapping table, read as written."""
    name, kind = EDMOBILE[a["kind"]]
    item = name == "collection.resource.play"
    start, end = (
        (datetime.fromisoformat(a[f]) - EPOCH) // timedelta(milliseconds=1)
        for f in ("startedAt", "finishedAt")
    )
    ctx: J = {"type": "stop", "contentGooruId": a["itemRef"], "classGooruId": a.get("classRef")}
    if item:
        ctx |= {
            "resourceType": kind,
            "parentGooruId": a.get("quizRef"),
            "collectionType": "assessment" if a.get("quizRef") else None,
        }
    else:
        ctx["collectionType"] = kind
    play = {
        "eventId": a["activityId"],
        "eventName": name,
        "startTime": start,
        "endTime": end,
        "user": {"gooruUId": a["learnerRef"]},
        "context": ctx,
        "metrics": {"score": a.get("percent")},
        "payLoadObject": {"answerStatus": OUTCOME.get(a.get("outcome") or "")},
    }
    # a quiz or lesson record is a whole play: its start is an event too (docs/formats.md)
    began = [] if item else [{**play, "eventId": f"{a['activityId']}:start",
                              "context": {**ctx, "type": "start"}}]  # fmt: skip
    if a.get("rating") is None:
        return [*began, play]
    rated = {k: v for k, v in ctx.items() if k != "type"} | {"reactionType": a["rating"]}
    return [
        *began,
        play,
        {
            "eventId": f"{a['activityId']}:rating",
            "eventName": "reaction.create",
            "startTime": end,
            "user": play["user"],
            "context": rated,
        },
    ]


def usage_des(fmt: str, value: Any) -> list[De]:
    if fmt == "gooru.logapi":
        return [d for e in (value if isinstance(value, list) else [value]) for d in logapi(e)]
    if fmt == "gooru.logwriter":
        return logwriter(value)
    if fmt == "partner.edmobile":
        return [d for e in edmobile_to_logapi(value) for d in logapi(e)]
    return []


@dataclass(frozen=True, order=True)
class SysDe:
    name: str
    root: str
    entity: str
    content_type: str | None
    parent: str | None
    competencies: tuple[str, ...]
    at_ms: int


def system_de(e: J) -> SysDe:
    """A content's kind as sent (``assessment-external`` stays so)."""
    d = e.get("data") or {}
    kind = None if e["eventName"] == "content.deleted" else d.get("contentType")
    return SysDe(
        e["eventName"],
        e["eventId"],
        d["id"],
        kind if e["eventName"].startswith("content.") else None,
        d.get("parentId"),
        tuple(d.get("competencies") or ()),
        e["timestamp"],
    )
