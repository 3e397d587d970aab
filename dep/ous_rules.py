"""The OUS workflow's rules for one command, without a database: what the command does to the
OUS, the answer it gets and what is broadcast. ``dep.ous_lifecycle`` stores the result.

- the first accepted command about an OUS creates it (201); a clear on an unknown OUS is 404;
- ``set-state S``: S must be a state (else 422 ``unknown_state``); for a new OUS an initial one,
  later an allowed move (else 409 ``illegal_transition``); S = the current state is a no-op
  (200, no move, no broadcast);
- substate, executive and flags: the latest command wins;
- a command caused by a broadcast more than ``max_hops`` times in a row since the last external
  command is refused (422 ``hop_limit``): it is an actor loop, not a workflow;
- an accepted move broadcasts ``state.change.<State>``, a changed substate
  ``recipe.change.<Recipe>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from dep.lifecycle import Entered, Left, Lifecycle


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    ous_uid: str
    operation: str
    value: str | None
    at: datetime
    hops: int = 0
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Ous:
    uid: str
    current: Entered | None = None
    substate: str | None = None
    executive: str | None = None
    flags: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def state(self) -> str | None:
        return None if self.current is None else self.current.state


@dataclass(frozen=True, slots=True)
class Broadcast:
    selector: str  # state.change.<State> or recipe.change.<Recipe>
    name: str  # the DE: ous.state.change or ous.recipe.change
    source: str | None  # the state left (state changes only)


@dataclass(frozen=True, slots=True)
class Result:
    ous: Ous | None  # after the command; None: the OUS still does not exist
    status: int
    reason: str | None = None
    detail: str | None = None
    left: Left | None = None
    broadcasts: tuple[Broadcast, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201)

    def reply(self, command_id: str) -> dict[str, object]:
        body: dict[str, object] = {"id": command_id, "status": self.status}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.ous is not None and self.ous.state is not None:
            body["state"] = self.ous.state
        return body


def apply(lc: Lifecycle, ous: Ous | None, c: Command, max_hops: int) -> Result:
    if c.hops > max_hops:
        detail = f"{c.hops} commands in a row caused by broadcasts; the limit is {max_hops}"
        return Result(ous, 422, "hop_limit", detail)
    if ous is None:
        if c.operation in ("clear-exec", "clear-flag"):
            return Result(None, 404, "unknown_ous", f"no OUS {c.ous_uid}")
        result = _apply(lc, Ous(c.ous_uid, created_at=c.at), c)
        return replace(result, status=201) if result.status == 200 else result
    return _apply(lc, ous, c)


def _apply(lc: Lifecycle, ous: Ous, c: Command) -> Result:
    value = c.value or ""
    if c.operation == "set-state":
        current, left, outcome = lc.step(ous.current, value, c.at, c.command_id)
        if outcome.verdict == "rejected":
            status = 422 if outcome.reason == "unknown_state" else 409
            reason = "illegal_transition" if outcome.reason == "not_initial" else outcome.reason
            where = ous.state or "nothing (a new OUS)"
            # A refused first command leaves no OUS behind.
            kept = None if ous.updated_at is None else ous
            return Result(kept, status, reason, f"from {where} to {value}")
        updated = replace(ous, current=current, updated_at=c.at)
        if not outcome.changed:
            return Result(updated, 200)
        return Result(
            updated,
            200,
            detail=outcome.reason,  # set only when a non-strict life-cycle flagged the move
            left=left,
            broadcasts=(Broadcast(f"state.change.{value}", "ous.state.change", outcome.source),),
        )
    if c.operation == "set-substate":
        changed = ous.substate != value
        updated = replace(ous, substate=value, updated_at=c.at)
        sent = (Broadcast(f"recipe.change.{value}", "ous.recipe.change", None),)
        return Result(updated, 200, broadcasts=sent if changed else ())
    if c.operation == "set-exec":
        return Result(replace(ous, executive=value, updated_at=c.at), 200)
    if c.operation == "clear-exec":
        return Result(replace(ous, executive=None, updated_at=c.at), 200)
    if c.operation == "set-flag":
        name, _, flag = value.partition("=")
        return Result(replace(ous, flags={**ous.flags, name: flag}, updated_at=c.at), 200)
    if c.operation == "clear-flag":
        flags = {k: v for k, v in ous.flags.items() if k != value}
        return Result(replace(ous, flags=flags, updated_at=c.at), 200)
    return Result(ous, 422, "unknown_operation", f"no operation {c.operation!r}")
