"""``da sample workflow``: OUS workflow commands as JSON lines of raw messages, for ``da emit``.

Each OUS is brought in as the QA step would: FullyObserved (or straight to ReadyForProcessing),
a recipe, a flag, then ReadyForProcessing; the actors take it from there. Unless ``clean``, the
file also holds what a real command stream has: illegal moves (409), unknown states (422), a
clear on an OUS nobody created (404), commands sent twice with one id, both body shapes (the
plain-text one has no id and no reply), and commands GEP must refuse.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from cli.sample import OldOutputOption, ToOption, deliver, write_jsonl

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RECIPES = ("PipelineCalibration", "PipelineSingleDish", "PipelineInterferometry")
Record = dict[str, Any]


def ous_uid(i: int, project: str = "A003") -> str:
    return f"uid://{project}/X{i // 10 + 1:x}/X{i:x}a"


def generate(
    seed: int = 11,
    count: int = 20,
    reply_to: str | None = "org.gooru.da.reply.sample",
    *,
    clean: bool = False,
    start: datetime = START,
    prefix: str = "cmd",
    project: str = "A003",
) -> list[Record]:
    rng = random.Random(seed)
    out: list[Record] = []
    at = start

    def send(uid: str, op: str, value: str | None, *, text: bool = False) -> Record:
        nonlocal at
        at += timedelta(seconds=rng.randint(5, 90))
        if text:
            record: Record = {"text": f"{op} {uid} {value or ''}".strip()}
        else:
            body: dict[str, Any] = {
                "id": f"{prefix}-{len(out):05d}",
                "operation": op,
                "ousUID": uid,
                "timestamp": int(at.timestamp() * 1000),
            }
            if value is not None:
                body["value"] = value
            if reply_to is not None:
                body["reply_to"] = reply_to
            record = {"value": body}
        out.append({"format": "xtss", "key": uid, **record})
        return out[-1]

    for i in range(count):
        uid = ous_uid(i, project)
        text = not clean and rng.random() < 0.3
        if not clean and rng.random() < 0.2:
            send(uid, "set-state", "Delivered", text=text)  # not an initial state: 409
        if rng.random() < 0.6:
            send(uid, "set-state", "FullyObserved", text=text)
        send(uid, "set-substate", rng.choice(RECIPES), text=text)
        send(uid, "set-flag", f"QA0={rng.choice(['Pass', 'SemiPass'])}", text=text)
        if not clean and rng.random() < 0.2:
            send(uid, "set-state", "Reviewed")  # no such state: 422
        last = send(uid, "set-state", "ReadyForProcessing", text=text)
        if not clean and rng.random() < 0.3:
            out.append(dict(last))  # the same command again: answered again, applied once
    if not clean:
        send(ous_uid(count + 1, project), "clear-exec", None)  # nobody created it: 404
        out.append({"format": "xtss", "key": "x", "text": f"launch {ous_uid(0, project)} now"})
        out.append({"format": "xtss", "key": "x", "text": "set-state uid://A003 Processing"})
        out.append({"format": "xtss", "key": "x", "value": {"operation": "set-exec"}})
    return out


def command(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 11,
    count: Annotated[int, typer.Option(min=1, help="Number of OUSs.")] = 20,
    reply_to: Annotated[
        str, typer.Option(help="Topic the answers go to ('' for none).")
    ] = "org.gooru.da.reply.sample",
    to: ToOption = None,
    output: OldOutputOption = None,
) -> None:
    """OUS workflow commands as JSON lines of raw messages, for `da emit`: both body shapes,
    illegal moves, unknown states, repeated command ids and commands GEP refuses."""
    records = generate(seed, count, reply_to or None)
    said = f"{len(records)} commands for {count} OUSs"
    deliver(to or output, lambda out: write_jsonl(records, out), said)
