"""``da sample fulfillments``: seeded, realistic proctoring events like the proctoring
system's export.

A fulfillment mostly walks Welcome -> LmiDownload -> LmiConnected (WAITING) -> LaunchStart
(LAUNCHING) -> LaunchEnd (TESTING) -> FulfillmentEnded (DONE), with non-trigger events (chat,
identity checks) in between. The export window is 26 hours from ``start``, so some fulfillments
are still open at its end, some cross midnight, and a couple, left open and closed by the
nightly clean-up, last more than a day. The same seed always gives the same file.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from typing import Annotated, TextIO

import typer

from cli.sample import OldOutputOption, ToOption, deliver

COLUMNS = (
    "id",
    "type",
    "fulfillment_id",
    "created_at",
    "created_by_id",
    "ip_address",
    "user_agent",
)
WINDOW = timedelta(hours=26)
DEFAULT_START = datetime(2020, 1, 18, 8, 0, 0)

# Whoever closes a fulfillment nobody closed (the nightly clean-up job).
_SYSTEM_USER = "1"
_PROCTORS = [str(n) for n in range(20_411, 20_411 + 3 * 17, 3)]
_USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.117 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:72.0) Gecko/20100101 Firefox/72.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.0.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.88 Safari/537.36",
]


@dataclass(frozen=True, slots=True)
class SampleRow:
    id: str
    type: str
    fulfillment_id: str
    created_at: str
    created_by_id: str
    ip_address: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    type: str
    by: str
    ip: str
    agent: str


class _Fulfillment:
    """One test taker's session; ``events`` grows as ``walk`` moves it along."""

    def __init__(self, rng: random.Random, fid: str, start: datetime) -> None:
        self.rng = rng
        self.fid = fid
        self.now = start
        self.taker = str(rng.randint(600_000, 2_999_999))
        self.taker_ip = f"{rng.choice([24, 67, 73, 98, 108, 174])}.{rng.randint(0, 255)}." + (
            f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        )
        self.agent = rng.choice(_USER_AGENTS)
        self.proctor = rng.choice(_PROCTORS)
        self.events: list[_Event] = []

    def after(self, low_s: float, high_s: float) -> None:
        self.now += timedelta(seconds=self.rng.uniform(low_s, high_s))

    def taker_event(self, type_: str) -> None:
        self.events.append(_Event(self.now, type_, self.taker, self.taker_ip, self.agent))

    def proctor_event(self, type_: str) -> None:
        # Proctors act through the proctoring system itself: it records no client address.
        self.events.append(_Event(self.now, type_, self.proctor, "", ""))

    def system_event(self, type_: str, by: str) -> None:
        # Nor do integrations (LogMeIn) or the clean-up job.
        self.events.append(_Event(self.now, type_, by, "", ""))

    def chat(self, probability: float) -> None:
        while self.rng.random() < probability:
            self.after(5, 120)
            if self.rng.random() < 0.5:
                self.taker_event("Event::ChatMessage")
            else:
                self.proctor_event("Event::ChatMessage")
            probability /= 2

    def walk(self, stop_after: str | None, long_test: bool) -> None:
        rng = self.rng
        self.taker_event("Event::Welcome")
        if stop_after == "ENTERING":
            return
        self.after(10, 90)
        self.taker_event("Event::LmiDownload")
        self.after(20, 240)
        self.system_event("Event::LmiConnected", self.taker)
        # WAITING: mostly a few minutes, sometimes long.
        waiting = min(rng.lognormvariate(5.2, 0.8), 45 * 60)
        self.now += timedelta(seconds=waiting * 0.3)
        if rng.random() < 0.6:
            self.proctor_event("Event::ProctorAssigned")
        self.chat(0.3)
        self.now += timedelta(seconds=waiting * 0.7)
        if stop_after == "WAITING":
            return
        if stop_after == "ABRUPT":  # the taker gives up or the proctor cancels
            self.proctor_event("Event::FulfillmentEnded")
            return
        self.proctor_event("Event::LaunchStart")
        self.after(40, 200)
        if rng.random() < 0.5:
            self.taker_event("Event::IdentityVerified")
            self.after(30, 180)
        if rng.random() < 0.3:
            self.taker_event("Event::RoomScan")
        self.after(20, 300)
        if stop_after == "LAUNCHING":
            return
        self.proctor_event("Event::LaunchEnd")
        testing = rng.uniform(24.05 * 3600, 24.4 * 3600) if long_test else rng.uniform(600, 7200)
        testing_ends = self.now + timedelta(seconds=testing)
        self.now += timedelta(seconds=testing * rng.uniform(0.2, 0.8))
        self.chat(0.25)
        if stop_after == "TESTING":
            return
        self.now = max(self.now + timedelta(seconds=1), testing_ends)
        if long_test:
            self.system_event("Event::FulfillmentEnded", _SYSTEM_USER)
        else:
            self.proctor_event("Event::FulfillmentEnded")


def _start_offset(rng: random.Random) -> timedelta:
    """When a session starts: busy daytime, a quieter evening, a next-morning wave."""
    roll = rng.random()
    if roll < 0.78:
        hours = rng.uniform(0, 13)  # 08:00-21:00
    elif roll < 0.92:
        hours = rng.uniform(13, 17.5)  # evening, some past midnight
    else:
        hours = rng.uniform(24, 25.8)  # next morning, mostly still open at the export's end
    return timedelta(hours=hours)


def _stop_after(rng: random.Random) -> str | None:
    """Where a session stops: mostly nowhere (it runs to DONE or to the export's end)."""
    roll = rng.random()
    if roll < 0.04:
        return "ABRUPT"
    if roll < 0.10:
        return rng.choice(["ENTERING", "WAITING", "LAUNCHING", "TESTING"])
    return None


def generate(seed: int = 42, count: int = 200, start: datetime = DEFAULT_START) -> list[SampleRow]:
    """``count`` fulfillments' events in the export window from ``start``, sorted by time."""
    rng = random.Random(seed)
    end = start + WINDOW
    fids = rng.sample(range(15_700_000, 15_930_000), count)
    events: list[tuple[datetime, int, _Event, str]] = []
    for n, fid in enumerate(fids):
        long_test = n < 2  # the ids are random, so the first two are as good as any
        offset = timedelta(minutes=rng.uniform(0, 20)) if long_test else _start_offset(rng)
        f = _Fulfillment(rng, str(fid), start + offset)
        f.walk(_stop_after(rng), long_test)
        previous = start
        for seq, event in enumerate(f.events):
            at = event.at
            # LogMeIn reports whole seconds, and so does the odd other writer: the real export
            # mixes both timestamp forms. Never let the truncation reorder a fulfillment.
            if event.type == "Event::LmiConnected" or rng.random() < 0.03:
                at = max(at.replace(microsecond=0), previous + timedelta(microseconds=1))
            previous = at
            if at <= end:
                events.append((at, n * 100 + seq, event, str(fid)))
    events.sort(key=lambda e: (e[0], e[1]))
    rows = []
    event_id = rng.randint(310_000_000, 320_000_000)
    for at, _, event, fulfillment_id in events:
        event_id += rng.randint(1, 60)  # other event kinds share the id sequence
        rows.append(
            SampleRow(
                id=str(event_id),
                type=event.type,
                fulfillment_id=fulfillment_id,
                created_at=_format(at),
                created_by_id=event.by,
                ip_address=event.ip,
                user_agent=event.agent,
            )
        )
    return rows


def _format(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S" if at.microsecond == 0 else "%Y-%m-%d %H:%M:%S.%f")


def write_csv(rows: Iterable[SampleRow], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(r) for r in rows)


def command(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 42,
    count: Annotated[int, typer.Option(min=1, help="Number of fulfillments.")] = 200,
    start: Annotated[
        datetime,
        typer.Option(formats=["%Y-%m-%dT%H:%M:%S"], help="Start of the 26-hour export window."),
    ] = DEFAULT_START,
    to: ToOption = None,
    output: OldOutputOption = None,
) -> None:
    """Proctoring events of COUNT fulfillments: a CSV export in the proctoring system's columns."""
    rows = generate(seed, count, start)
    deliver(
        to or output,
        lambda out: write_csv(rows, out),
        f"{len(rows)} events of {count} fulfillments",
    )
