"""Fan-out rules: one module per kind of entity, each turning a canonical event into its DEs.

A rule module exposes ``ENTITY`` (the canonical ``entity_type`` it serves), ``BUCKETS`` (the
(source, bucket) pairs of the topics it writes, for ``da topics ensure``), ``SCHEMA`` (the
schema under ``schemas/`` of the records it writes there, for the schema registry) and
``fan_out(event, codec, stage)``. Adding one: a module, and a line in ``demux.stage.RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiscreteEvent:
    name: str  # usage.<object>.<metric> or <entity>.<action>: decides the topic
    key: str  # the entity whose DEs must stay in order
    value: bytes  # the Avro record
