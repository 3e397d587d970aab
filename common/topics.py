"""The one place that names topics.

Naming follows the design: raw events enter on ``org.gooru.da.ingest``; discrete events
(DE) live on ``org.gooru.da.sink.<source>.<bucket>`` where the source is the stage that emitted them
(``demux`` or ``dep``). A usage DE ``usage.<object>.<metric>`` goes to bucket ``<object>.<metric>``;
a system DE ``<entity>.<action>`` goes to bucket ``<entity>``. Every name can carry a namespace
prefix so that tests (and tenants) never share topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from common.errors import InvalidEvent

Source = Literal["demux", "dep"]

ROOT = "org.gooru.da"
# Answer topics: the CLI's, and one for other clients (and the sample file).
REPLY_TOPICS = ("cli", "sample")
_DE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def de_bucket(de_name: str) -> str:
    """Bucket of a discrete event name, per the naming convention."""
    if not _DE_NAME_RE.match(de_name):
        raise InvalidEvent("bad_de_name", f"{de_name!r} is not a dotted lower-case DE name")
    parts = de_name.split(".")
    if parts[0] == "usage":
        if len(parts) != 3:
            raise InvalidEvent(
                "bad_de_name", f"usage DE {de_name!r} is not usage.<object>.<metric>"
            )
        return f"{parts[1]}.{parts[2]}"
    if len(parts) != 2:
        raise InvalidEvent("bad_de_name", f"system DE {de_name!r} is not <entity>.<action>")
    return parts[0]


@dataclass(frozen=True)
class Topics:
    namespace: str = ""

    def _name(self, suffix: str) -> str:
        base = f"{ROOT}.{suffix}"
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def ingest(self) -> str:
        """Raw events from partners and emitters (JSON, keyed by entity id)."""
        return self._name("ingest")

    @property
    def canonical(self) -> str:
        """Validated, normalized events from GEP for the demux (Avro)."""
        return self._name("canonical")

    def dead_letter(self, stage: str) -> str:
        """Where a stage puts events that can never succeed, with their original bytes."""
        return self._name(f"dlq.{stage}")

    @property
    def reply_prefix(self) -> str:
        return self._name("reply.")

    @property
    def replies(self) -> tuple[str, ...]:
        """The topics answers to commands may go to (``da topics ensure`` creates them): a
        command's ``reply_to`` naming any other topic is refused, so a command can neither make
        a DEP write anywhere nor stall its relay on a topic that does not exist."""
        return tuple(self.reply_prefix + name for name in REPLY_TOPICS)

    def sink(self, source: Source, de_name: str) -> str:
        return self._name(f"sink.{source}.{de_bucket(de_name)}")

    def sink_bucket(self, source: Source, bucket: str) -> str:
        return self._name(f"sink.{source}.{bucket}")

    def all_for(self, stages: list[str], sink_buckets: list[tuple[Source, str]]) -> list[str]:
        """Every topic the pipeline needs, for ``da topics ensure``."""
        names = [self.ingest, self.canonical]
        names += [self.dead_letter(s) for s in stages]
        names += [self.sink_bucket(src, b) for src, b in sink_buckets]
        names += self.replies
        return sorted(set(names))
