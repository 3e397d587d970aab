"""What a DEP declares about itself, so the registry, the CLI and the invariant tests can see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.codec import Codec
from common.db import Migration
from common.settings import Settings
from common.store import StoreHandler
from common.topics import Source, Topics


@dataclass(frozen=True)
class DepSpec:
    name: str
    description: str
    inputs: tuple[tuple[Source, str], ...]  # (source, bucket) of each DE topic it consumes
    tables: tuple[str, ...]
    migrations: Path
    input_schemas: tuple[str, ...]  # schema names under schemas/ its input DEs use
    build: Callable[[Settings, Codec], StoreHandler[Any]]
    # (source, bucket) of each DE topic it emits to, through the outbox.
    emits: tuple[tuple[Source, str], ...] = ()
    # The schema under schemas/ of the DEs it emits (their topics' registry subjects).
    emits_schema: str = ""
    # Whether it writes to the outbox (DEs it emits, dead letters of expired parked events):
    # the store processor then relays after each commit.
    outbox: bool = False
    # Relay the outbox exactly once (a Kafka transaction per batch, ``common.outbox``): for what
    # a reader counts, such as answers and broadcasts.
    outbox_exactly_once: bool = False
    # Whether its batches write to the outbox; False: only its timers do (``tick``), and the
    # relay runs after ticks only, saving a database round trip per batch.
    outbox_from_batches: bool = True
    # Stages whose dead-letter topics it consumes too (a DEP that keeps the errors table).
    dead_letters_of: tuple[str, ...] = ()
    # Selector globs it subscribes to (``common.workflow``): other messages are skipped undecoded.
    selectors: tuple[str, ...] = ()

    def topics(self, topics: Topics) -> list[str]:
        sinks = [topics.sink_bucket(src, bucket) for src, bucket in self.inputs]
        return sinks + [topics.dead_letter(stage) for stage in self.dead_letters_of]

    def migration_files(self) -> list[Migration]:
        return [
            Migration(f"{self.name}/{p.name}", p) for p in sorted(self.migrations.glob("*.sql"))
        ]
