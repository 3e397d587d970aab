"""``da load``: an initial load. A bulk file goes onto the ingest topic as fast as the pipeline
takes it, while live traffic keeps flowing, and is recorded (``common.loads``) with per-stage
completion marks, so ``da status`` can say how far it has come and never calls it done early.

Why "as fast as the pipeline takes it" and not as fast as the broker does: a stage reads each
partition in order, so a live event waits behind whatever of the load is ahead of it in its
partition. ``da load`` keeps at most ``--window`` records outstanding in the load's stages (their
lag, summed): the stages stay busy, the load takes as long as they need anyway, and a live event
waits behind at most that many.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Annotated

import typer

from cli.emit import Pacer, Sender, ingest_topic, messages, open_input
from cli.emit_input import BadRow, Message
from cli.load_model import LoadGraph, graph
from cli.load_status import initial_load
from common import loads
from common.kafka import make_producer
from common.status_read import Reader
from common.topics import Topics


class Window:
    """Holds the file back while the load's stages have more than ``size`` records outstanding;
    tells the load's row how much was sent."""

    def __init__(self, reader: Reader, g: LoadGraph, load_id: int, size: int) -> None:
        self.reader, self.g, self.load_id, self.size = reader, g, load_id, size
        self.waited_s = 0.0

    def outstanding(self) -> int:
        samples = self.reader.sample()
        return sum(
            p.lag
            for name in self.g.stages
            for p in samples[name].partitions
            if p.topic in self.g.inputs[name]
        )

    def wrap(self, items: Iterable[Message | BadRow]) -> Iterator[Message | BadRow]:
        step = max(100, self.size // 2)
        for n, item in enumerate(items, 1):
            if n % step == 0:
                loads.progress_sent(self.reader.db(), self.load_id, n)
                started = time.monotonic()
                while self.outstanding() > self.size:
                    time.sleep(0.2)
                self.waited_s += time.monotonic() - started
            yield item


def load(
    file: Annotated[
        str,
        typer.Argument(
            help="What `da emit` replays: a CSV export of proctoring events or JSON lines "
            "(*.jsonl); - reads standard input."
        ),
    ],
    window: Annotated[
        int,
        typer.Option(
            "--window",
            min=100,
            help="At most this many records outstanding in the pipeline's stages while sending "
            "(live events wait behind at most these).",
        ),
    ] = 2000,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Follow the load until every stage is done."),
    ] = True,
    topic_check: Annotated[
        bool,
        typer.Option(
            "--topic-check/--no-topic-check",
            help="Refuse to send when the ingest topic does not exist.",
        ),
    ] = True,
) -> None:
    """Replay a bulk file as an initial load: sent as fast as the stages take it (live traffic
    keeps flowing beside it), recorded with per-stage completion marks; `da status` shows its
    progress ("initial load 87 %: gep done, demux done, fulfillment-state 4/6 partitions, ETA
    40 s"). A stage that does not run keeps it from being done; Ctrl-C stops following, not the
    load. Exit status 0 once every stage is done (or, with --no-wait, once sent), 1 bad rows or
    failed deliveries."""
    from cli.main import load_settings

    with open_input(file) as (lines, jsonl, total):
        items = messages("da load", file, lines, jsonl)
        settings = load_settings()
        topic = ingest_topic("da load", settings, check=topic_check)
        reader = Reader(settings)
        try:
            g = graph(Topics(settings.namespace))
            start = {
                (p.topic, p.partition): p.end
                for s in reader.sample().values()
                for p in s.partitions
            }
            events = 0 if total is None else total - (not jsonl)
            load_id = loads.begin(reader.db(), file, events, start)
            sender = Sender(make_producer(settings), topic, verbose=False)
            held = Window(reader, g, load_id, window)
            started = time.monotonic()
            interrupted = sender.run(held.wrap(items), Pacer(None), total=events or None)
            tally = sender.finish(settings.io_timeout_s)
            loads.sent(reader.db(), load_id, tally.delivered, reader.topic_ends(topic))
            took = time.monotonic() - started
            typer.echo(
                f"load {load_id}: sent {tally.delivered}, bad {'lines' if jsonl else 'rows'} "
                f"{tally.bad}, failed deliveries {tally.failed} in {took:.1f} s "
                f"(held back {held.waited_s:.1f} s for the stages)",
                err=True,
            )
            if interrupted:
                raise typer.Exit(130)
            if wait:
                _follow(reader, started)
        finally:
            reader.close()
    if tally.bad or tally.failed:
        raise typer.Exit(1)


def _follow(reader: Reader, started: float) -> None:
    try:
        _follow_until_done(reader, started)
    except KeyboardInterrupt:
        typer.echo("stopped following; the load goes on (`da status` shows it)", err=True)
        raise typer.Exit(130) from None


def _follow_until_done(reader: Reader, started: float) -> None:
    last = ""
    while True:
        progress = initial_load(reader)
        if progress is None:
            return
        if progress.summary() != last:
            last = progress.summary()
            typer.echo(last, err=True)
        if progress.done:
            typer.echo(f"initial load done in {time.monotonic() - started:.1f} s", err=True)
            return
        time.sleep(1.0)


def register(app: typer.Typer) -> None:
    app.command("load")(load)
