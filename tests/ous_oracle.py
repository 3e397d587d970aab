"""The OUS workflow's outputs computed a second way, straight from the rules in the issue (not
from ``dep.ous_rules`` or ``dep.lifecycle``): a second implementation to check the first.

Input: the commands as the state service saw them, in log order (read back from the command
topic). Output: the tables, the answers (one per command message that names an allowed
``reply_to``, a repeated id answered again with its first answer) and the broadcasts per OUS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

READY = "ReadyForProcessing"
INITIAL = {"FullyObserved", READY}
MOVES = {
    "FullyObserved": {"ReadyForProcessing"},
    "ReadyForProcessing": {"Processing"},
    "Processing": {"ProcessingProblem", "ReadyForReview"},
    "ProcessingProblem": {"ReadyForProcessing"},
    "ReadyForReview": {"Reviewing"},
    "Reviewing": {"ReadyForProcessing", "Verified"},
    "Verified": {"DeliveryInProgress"},
    "DeliveryInProgress": {"Delivered"},
    "Delivered": set(),
}


@dataclass(frozen=True)
class Cmd:
    id: str
    uid: str
    op: str
    value: str | None
    at: datetime
    hops: int
    reply_to: str | None


@dataclass
class Expected:
    # uid -> (state, state_since, substate, executive, flags, updated_at)
    status: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    history: list[tuple[str, str, datetime, datetime, int]] = field(default_factory=list)
    rejections: dict[str, str] = field(default_factory=dict)  # command id -> reason
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    broadcasts: dict[str, list[str]] = field(default_factory=dict)  # uid -> selectors in order
    # Visits of ReadyForProcessing that a broadcast showed with a recipe: the dispatcher's work
    # (a visit is named by the command that began it).
    dispatches: set[str] = field(default_factory=set)


def expected(commands: list[Cmd], reply_topics: tuple[str, ...], max_hops: int) -> Expected:
    out = Expected()
    seen: dict[str, dict[str, Any]] = {}
    ous: dict[str, dict[str, Any]] = {}
    for c in commands:
        allowed = c.reply_to in reply_topics
        if c.id in seen:
            if allowed:
                out.replies.append((c.id, seen[c.id]))
            continue
        status, reason = _one(c, ous, out, reply_topics, max_hops)
        reply: dict[str, Any] = {"id": c.id, "status": status}
        if reason:
            reply["reason"] = reason
            out.rejections[c.id] = reason
        if c.uid in ous and ous[c.uid]["state"]:
            reply["state"] = ous[c.uid]["state"]
        seen[c.id] = reply
        if allowed:
            out.replies.append((c.id, reply))
    for uid, o in ous.items():
        out.status[uid] = (
            o["state"],
            o["since"],
            o["substate"],
            o["executive"],
            o["flags"],
            o["updated"],
        )
    return out


def _one(
    c: Cmd, ous: dict[str, dict[str, Any]], out: Expected, replies: tuple[str, ...], max_hops: int
) -> tuple[int, str | None]:
    if c.reply_to is not None and c.reply_to not in replies:
        return 422, "reply_to_not_allowed"
    if c.hops > max_hops:
        return 422, "hop_limit"
    new = c.uid not in ous
    if new and c.op in ("clear-exec", "clear-flag"):
        return 404, "unknown_ous"
    o = ous.get(c.uid) or {
        "state": None,
        "since": None,
        "visit": None,
        "substate": None,
        "executive": None,
        "flags": {},
        "updated": None,
    }
    casts = out.broadcasts.setdefault(c.uid, [])
    if c.op == "set-state":
        target = c.value or ""
        if target not in MOVES:
            return 422, "unknown_state"
        if o["state"] is None and target not in INITIAL:
            return 409, "illegal_transition"
        if o["state"] is not None and target != o["state"] and target not in MOVES[o["state"]]:
            return 409, "illegal_transition"
        if target != o["state"]:
            if o["state"] is not None:
                secs = max(0, int((c.at - o["since"]).total_seconds()))
                out.history.append((c.uid, o["state"], o["since"], c.at, secs))
            o["state"], o["since"], o["visit"] = target, c.at, c.id
            casts.append(f"state.change.{target}")
            if target == READY and o["substate"]:
                out.dispatches.add(c.id)
    elif c.op == "set-substate":
        if o["substate"] != c.value:
            casts.append(f"recipe.change.{c.value}")
            if o["state"] == READY and c.value:
                out.dispatches.add(o["visit"])
        o["substate"] = c.value
    elif c.op == "set-exec":
        o["executive"] = c.value
    elif c.op == "clear-exec":
        o["executive"] = None
    elif c.op == "set-flag":
        name, _, value = (c.value or "").partition("=")
        o["flags"] = {**o["flags"], name: value}
    elif c.op == "clear-flag":
        o["flags"] = {k: v for k, v in o["flags"].items() if k != c.value}
    o["updated"] = c.at
    ous[c.uid] = o
    return (201 if new else 200), None
