"""A stream of good web events with nasty messages among them, through GEP, demux and the
``web-events`` and ``collector-errors`` DEPs as real processes; then the verdict: every good
event stored, every nasty one dead-lettered once with an allowed reason, no stage exited, no
batch retried over one of them. The e2e test runs one round; ``make fuzz`` runs many."""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from cli.schemas import codec_for
from common import web_post as web
from common.codec import Codec
from common.deadletter import H_LENGTH, H_REASON, H_SHA256, H_STAGE, H_TRUNCATED, header
from common.errors import InvalidEvent
from common.kafka import make_producer
from common.settings import Settings
from common.topics import Topics
from common.web_event import WEB_DE
from tests.e2e.nasty import HEADERS, Nasty, corpus, generated, good
from tests.e2e.pipeline import Stages, prepare
from tests.kafka_read import read_topic

COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "web-events": ["dep", "run", "web-events"],
    "errors": ["dep", "run", "collector-errors"],
}
DLQ_STAGES = ("gep", "demux", "dep.web-events", "dep.collector-errors")
# Lines a stage logs when it retries a batch; none may be about a message that can never pass.
RETRY_MARKS = ("transient fault", "transaction call failed")
NEVER_RETRIED = ("too large", "index row", "0x00", "Unicode", "out of range", "recursion")


@dataclass
class Figures:
    tried: Counter[str] = field(default_factory=Counter)  # class -> messages sent
    dead_lettered: Counter[str] = field(default_factory=Counter)
    good_sent: int = 0
    good_stored: int = 0
    stored_adversarial: int = 0  # generated events that were valid after all, and stored
    crashes: int = 0  # stage exits while running
    stalls: int = 0  # messages neither stored nor dead-lettered in time
    duplicates: int = 0
    wrong_reason: list[str] = field(default_factory=list)
    bad_retries: list[str] = field(default_factory=list)
    errors_table_missing: int = 0

    @property
    def silent_losses(self) -> int:
        return self.good_sent - self.good_stored + self.stalls

    def problems(self) -> list[str]:
        out = [
            f"{n} {k}"
            for k, n in (
                ("crashes", self.crashes),
                ("stalls", self.stalls),
                ("duplicates", self.duplicates),
                ("silent losses", self.silent_losses),
                ("errors rows missing", self.errors_table_missing),
            )
            if n
        ]
        return out + self.wrong_reason + self.bad_retries


CODEC = Codec()


def identity(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, codec: Codec = CODEC
) -> str:
    """What a nasty message is known by, whole or truncated in its dead letter; a DEP's dead
    letter holds a DE (in the stages' framing: ``codec``), known by the event id GEP gave the
    raw message."""
    if header(headers, H_STAGE) in ("dep.web-events",):
        try:
            return f"event:{codec.decode(WEB_DE, value)['event_id']}"
        except InvalidEvent:
            pass
    if header(headers, H_TRUNCATED):
        return f"{header(headers, H_LENGTH)}:{header(headers, H_SHA256)}"
    whole = value or b""
    return f"{len(whole)}:{hashlib.sha256(whole).hexdigest()}"


def remember(nasty: dict[str, Nasty], n: Nasty) -> None:
    nasty[identity(n.value, None)] = n
    try:
        env = msgspec.json.decode(n.value, type=web.Envelope)
        nasty[f"event:{web.event_id(env.app, bytes(env.event))}"] = n
    except (msgspec.DecodeError, RecursionError):
        pass


def send(
    settings: Settings, rounds: int, per_round: int, generated_per_round: int = 0, seed: int = 1
) -> tuple[dict[str, Nasty], int]:
    """``rounds`` x (``per_round`` good events, the corpus and ``generated_per_round`` events of
    random adversarial content, interleaved); returns the nasty messages by identity and how
    many good events were sent."""
    rng = random.Random(seed)
    producer = make_producer(settings)
    topic = Topics(settings.namespace).ingest
    nasty: dict[str, Nasty] = {}
    sent = 0
    for r in range(rounds):
        bad = corpus(settings.max_message_bytes, salt=r)
        bad += [generated(rng, r, i) for i in range(generated_per_round)]
        rng.shuffle(bad)
        step = max(1, per_round // (len(bad) + 1))
        for i in range(per_round):
            producer.produce(topic, good(r * per_round + i), f"g{i}".encode(), headers=HEADERS)
            sent += 1
            if i % step == step - 1 and bad:
                n = bad.pop(0)
                producer.produce(topic, n.value, b"n", headers=HEADERS if n.named else [])
                remember(nasty, n)
                producer.poll(0)
        for n in bad:
            producer.produce(topic, n.value, b"n", headers=HEADERS if n.named else [])
            remember(nasty, n)
    assert producer.flush(30) == 0
    return nasty, sent


def stored_ids(settings: Settings, nasty: dict[str, Nasty]) -> list[str]:
    """The identities (``event:<id>``) of nasty messages that were stored as good events."""
    ids = [k[len("event:") :] for k in nasty if k.startswith("event:")]
    with psycopg.connect(
        settings.database_url, options=f"-c search_path={settings.database_schema}"
    ) as c:
        rows = c.execute("SELECT event_id FROM web_events WHERE event_id = ANY(%s)", (ids,))
        return [f"event:{r[0]}" for r in rows]


def stored(settings: Settings) -> tuple[int, int]:
    """Good events in web_events, rows in collector_errors."""
    with psycopg.connect(
        settings.database_url, options=f"-c search_path={settings.database_schema}"
    ) as c:
        n = c.execute("SELECT count(*) FROM web_events WHERE session_id LIKE 'good-%%'").fetchone()
        e = c.execute("SELECT count(*) FROM collector_errors").fetchone()
    return int(n[0]) if n else 0, int(e[0]) if e else 0


def run(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    *,
    rounds: int,
    per_round: int,
    generated_per_round: int = 0,
    seed: int = 1,
    settle_s: float = 180,
) -> Figures:
    prepare(env)
    stages = Stages(env, logs, COMMANDS)
    for stage in COMMANDS:
        stages.start(f"{stage}-1")
    figures = Figures()
    try:
        nasty, figures.good_sent = send(settings, rounds, per_round, generated_per_round, seed)
        for n in {id(n): n for n in nasty.values()}.values():
            figures.tried[n.name] += 1
        topics = Topics(settings.namespace)
        deadline = time.monotonic() + settle_s
        letters: dict[str, list[Any]] = {}
        while True:
            good_stored, _ = stored(settings)
            done = good_stored >= figures.good_sent
            if done or time.monotonic() > deadline:
                break
            time.sleep(2)
        # Dead letters: each nasty message once, GEP's and the DEPs' topics together.
        messages = {id(n): n for n in nasty.values()}.values()
        at_gep = sum(1 for n in messages if n.outcomes and all(o[0] == "gep" for o in n.outcomes))
        for stage in DLQ_STAGES:
            want = at_gep if stage == "gep" else 0
            letters[stage] = read_topic(
                settings, topics.dead_letter(stage), expect=want, linger_s=3, timeout_s=60
            )
        figures.good_stored, errors_rows = stored(settings)
        seen: Counter[str] = Counter()
        with closing(codec_for(settings)) as codec:
            keys = [
                (stage, m, identity(m.value(), m.headers(), codec))
                for stage in ("gep", "demux", "dep.web-events")
                for m in letters[stage]
            ]
        for stage, m, key in keys:
            seen[key] += 1
            known = nasty.get(key)
            if known is None:
                figures.wrong_reason.append(
                    f"{stage}: dead letter of a good event ({header(m.headers(), H_REASON)})"
                )
                continue
            got = (header(m.headers(), H_STAGE) or "", header(m.headers(), H_REASON) or "")
            if known.outcomes and got not in known.outcomes:
                figures.wrong_reason.append(f"{known.name}: {got}, expected {known.outcomes}")
            else:
                figures.dead_lettered[known.name] += 1

        # Per message sent: how often it was dead-lettered, or stored (a generated event that
        # was valid after all); never, or more than once, is a failure.
        per_message: Counter[int] = Counter()
        for k, c in seen.items():
            if k in nasty:
                per_message[id(nasty[k])] += c
        for k in stored_ids(settings, nasty):
            per_message[id(nasty[k])] += 1
            figures.stored_adversarial += 1
        figures.stalls = len(set(map(id, messages)) - set(per_message))
        figures.duplicates = sum(c - 1 for c in per_message.values() if c > 1)
        # The errors DEP copies every GEP dead letter into its table, or dead-letters the copy.
        figures.errors_table_missing = max(
            0, len(letters["gep"]) - errors_rows - len(letters["dep.collector-errors"])
        )
        figures.crashes = sum(1 for proc in stages.procs.values() if proc.poll() is not None)
        for instance, text in stages.tails_full().items():
            for line in text.splitlines():
                if any(m in line for m in RETRY_MARKS) and any(w in line for w in NEVER_RETRIED):
                    figures.bad_retries.append(f"{instance}: {line[:200]}")
    finally:
        exits = stages.stop_all()
    figures.crashes += sum(1 for code in exits.values() if code != 0)
    return figures
