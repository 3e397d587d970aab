"""``da emit``: replay a file onto the ingest topic, one message per CSV row or JSON line
(``cli.emit_input`` reads them; this module paces, sends and counts what the broker acknowledged).
"""

from __future__ import annotations

import io
import itertools
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from confluent_kafka import KafkaError, KafkaException, Producer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.emit_input import BadRow, CsvHeaderError, Message, csv_messages, is_jsonl, read_jsonl
from common.kafka import check_kafka, make_admin, make_producer
from common.settings import Settings
from common.topics import Topics


class Pacer:
    """At most ``rate`` messages per second, on average since the start (none when ``None``)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._start: float | None = None
        self._count = 0

    def delay(self) -> float:
        """Seconds to wait before the next message may go."""
        if not self._interval:
            return 0.0
        now = self._clock()
        if self._start is None:
            self._start = now
        return max(0.0, self._start + self._count * self._interval - now)

    def sent(self) -> None:
        self._count += 1


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0
    bad: int = 0


def register(app: typer.Typer) -> None:
    app.command("emit")(emit)


def emit(
    file: Annotated[
        str,
        typer.Argument(
            help="CSV export of proctoring events, or JSON lines of raw messages (*.jsonl); "
            "- reads standard input (JSON lines when its first line is an object).",
        ),
    ],
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="At most this many events per second."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Print one line per delivered event.")
    ] = False,
    topic_check: Annotated[
        bool,
        typer.Option(
            "--topic-check/--no-topic-check",
            help="Refuse to send when the ingest topic does not exist.",
        ),
    ] = True,
) -> None:
    """Replay a file onto the ingest topic: a CSV export of proctoring events (one message per
    row), or JSON lines of raw messages with their key and format (`da sample learning`).
    The progress bar shows an ETA when the size is known (a file, or stdin redirected from one)."""
    from cli.main import load_settings

    with open_input(file) as (lines, jsonl, total):
        items = messages("da emit", file, lines, jsonl)
        settings = load_settings()
        topic = ingest_topic("da emit", settings, check=topic_check)
        sender = Sender(make_producer(settings), topic, verbose=verbose)
        started = time.monotonic()
        known = None if total is None else total - (not jsonl)
        interrupted = sender.run(items, Pacer(rate), total=known)
    tally = sender.finish(settings.io_timeout_s)
    elapsed = time.monotonic() - started
    typer.echo(
        f"sent {tally.delivered}, bad {'lines' if jsonl else 'rows'} {tally.bad}, "
        f"failed deliveries {tally.failed} "
        f"in {elapsed:.1f} s ({tally.delivered / elapsed if elapsed else 0:.0f} events/s)"
        + (" (interrupted)" if interrupted else ""),
        err=True,
    )
    if interrupted:
        raise typer.Exit(130)
    if tally.bad or tally.failed:
        raise typer.Exit(1)


def messages(
    command: str, file: str, lines: Iterable[str], jsonl: bool
) -> Iterator[Message | BadRow]:
    """The input's messages; a CSV header without a required column ends the command (2)."""
    try:
        return read_jsonl(lines) if jsonl else csv_messages(lines)
    except CsvHeaderError as exc:
        typer.echo(f"{command}: {file}: {exc}", err=True)
        raise typer.Exit(2) from None


def ingest_topic(command: str, settings: Settings, *, check: bool) -> str:
    """The ingest topic, once Kafka answers; with ``check``, refused (2) when it is missing."""
    topic = Topics(settings.namespace).ingest
    check_kafka(settings)
    if (
        check
        and topic not in make_admin(settings).list_topics(timeout=settings.io_timeout_s).topics
    ):
        typer.echo(
            f"{command}: topic {topic} does not exist; create it (`da topics ensure`) "
            "or pass --no-topic-check to let the broker decide",
            err=True,
        )
        raise typer.Exit(2)
    return topic


@contextmanager
def open_input(file: str) -> Iterator[tuple[Iterable[str], bool, int | None]]:
    """The input's lines, whether they are JSON lines, and how many (None: unknown, a pipe)."""
    # surrogateescape: bytes that are not UTF-8 fail one row (in to_message), not the whole file.
    options: dict[str, Any] = {"encoding": "utf-8-sig", "errors": "surrogateescape", "newline": ""}
    if file != "-":
        path = Path(file)
        if not path.is_file():
            raise typer.BadParameter(f"no file {file!r}", param_hint="'FILE'")
        with path.open(**options) as f:
            yield f, is_jsonl(path.name), _count_lines(path.open("rb"))
        return
    stream = io.TextIOWrapper(sys.stdin.buffer, **options)
    first = stream.readline()
    yield itertools.chain([first], stream), first.lstrip().startswith("{"), _stdin_lines()


def _stdin_lines() -> int | None:
    """Lines of stdin when it is a regular file (``da emit - < events.csv``), read with pread so
    the stream's position does not move; None for a pipe or a terminal."""
    info = os.fstat(0)
    if not stat.S_ISREG(info.st_mode):
        return None
    count, offset = 0, 0
    while chunk := os.pread(0, 1 << 20, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


class Sender:
    """Produces messages and counts what the broker acknowledges."""

    _MAX_REPORTED_FAILURES = 20

    def __init__(self, producer: Producer, topic: str, *, verbose: bool) -> None:
        self._producer = producer
        self._topic = topic
        self._verbose = verbose
        self._console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
        self.tally = Tally()

    def run(self, items: Iterable[Message | BadRow], pacer: Pacer, *, total: int | None) -> bool:
        """Send every good row; report bad ones. Returns True when interrupted by Ctrl-C."""
        progress = Progress(
            TextColumn("emit"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeElapsedColumn(),
            *([TextColumn("ETA"), TimeRemainingColumn()] if total is not None else []),
            console=self._console,
            disable=self._verbose or not sys.stderr.isatty(),
        )
        rows = 0
        started = time.monotonic()
        with progress:
            task = progress.add_task(
                "emit", total=None if total is None else max(total, 1), rate="0"
            )
            try:
                for rows, message in enumerate(items, 1):
                    if isinstance(message, BadRow):
                        self.tally.bad += 1
                        self._console.print(str(message))
                        continue
                    while (wait := pacer.delay()) > 0:
                        self._producer.poll(wait)  # serves delivery reports while pacing
                    self._produce(message)
                    pacer.sent()
                    self._producer.poll(0)  # delivery reports as they come, not all at the end
                    if rows % 512 == 0:
                        rate = self.tally.delivered / max(time.monotonic() - started, 1e-9)
                        progress.update(task, completed=rows, rate=f"{rate:,.0f}")
            except KeyboardInterrupt:
                return True
            finally:
                progress.update(task, total=max(rows, 1), completed=rows)
        return False

    def finish(self, timeout_s: float) -> Tally:
        """Wait (bounded) for outstanding deliveries; what is left counts as failed."""
        remaining: int = self._producer.flush(timeout_s)
        if remaining:
            self.tally.failed += remaining
            self._console.print(f"{remaining} message(s) not delivered within {timeout_s:g} s")
        sys.stdout.flush()
        return self.tally

    def _produce(self, message: Message) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    on_delivery=self._on_delivery(message),
                )
                return
            except BufferError:
                # The local queue is full: let librdkafka drain some, then retry the same row.
                self._producer.poll(0.1)
            except KafkaException as exc:
                self._failed(message, exc.args[0].str())
                return

    def _on_delivery(self, message: Message) -> Callable[[KafkaError | None, Any], None]:
        def report(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                self._failed(message, err.str())
                return
            self.tally.delivered += 1
            if self._verbose:
                sys.stdout.write(f"[x] Sent {message.label}\n")

        return report

    def _failed(self, message: Message, reason: str) -> None:
        self.tally.failed += 1
        if self.tally.failed <= self._MAX_REPORTED_FAILURES:
            self._console.print(f"line {message.line}: delivery failed: {reason}")
        elif self.tally.failed == self._MAX_REPORTED_FAILURES + 1:
            self._console.print("more delivery failures; counting them silently")


def _count_lines(f: BinaryIO) -> int:
    with f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
