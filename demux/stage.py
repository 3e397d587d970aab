"""demux's handler: one canonical event in, its discrete events out."""

from __future__ import annotations

from collections.abc import Sequence

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent
from common.names import DEMUX
from common.runloop import Message
from common.topics import Source, Topics
from common.transactional import Output
from demux import fulfillment, ous, system, usage, web
from demux.reframe import Reframer
from demux.rules import DiscreteEvent

STAGE = DEMUX
RULES = {rule.ENTITY: rule for rule in (fulfillment, usage, web, ous)} | dict.fromkeys(
    system.ENTITIES, system
)


def sink_buckets() -> list[tuple[Source, str]]:
    """Every DE topic the demux writes, for ``da topics ensure``."""
    return [b for rule in RULES.values() for b in rule.BUCKETS]


class Demux:
    def __init__(self, topics: Topics, codec: Codec) -> None:
        self.topics = topics
        self.codec = codec
        # Per DE name, its topic and header, built once: a few hundred names at most.
        self._routes: dict[str, tuple[str, list[tuple[str, bytes]]]] = {}
        # Proctoring records re-framed without a decode and an encode (the same bytes).
        self._reframe = Reframer(codec, STAGE)

    def input_topics(self) -> list[str]:
        return [self.topics.canonical]

    def __call__(self, msg: Message) -> Sequence[Output]:
        de = self._reframe(msg.value())
        if de is not None:
            return [self._output(de)]
        event = CanonicalEvent.decode(self.codec, msg.value())
        rule = RULES.get(event.entity_type)
        if rule is None:
            raise InvalidEvent(
                "unknown_entity",
                f"no discrete events for {event.entity_type!r}",
                field="entity_type",
            )
        return [self._output(de) for de in rule.fan_out(event, self.codec, STAGE)]

    def _output(self, de: DiscreteEvent) -> Output:
        route = self._routes.get(de.name)
        if route is None:
            route = (self.topics.sink("demux", de.name), [("da-de-name", de.name.encode())])
            self._routes[de.name] = route
        return Output(route[0], de.key.encode(), de.value, route[1])
