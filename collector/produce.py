"""Producing from asyncio: the one confluent-kafka producer, polled by its own thread.

``confluent_kafka.aio.AIOProducer`` cannot send headers, and every record here needs its
``da-format`` header, so this is the small alternative: ``produce()`` is a non-blocking call into
librdkafka's queue; a thread runs ``poll()``, which calls the delivery callbacks; the last
callback of a request resolves that request's future on the event loop. A request is one future
however many events it holds, so the loop is woken once per post, not once per event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer

from common.runloop import Headers

log = logging.getLogger(__name__)


class NotAcknowledged(Exception):
    """The broker did not acknowledge every record of a request (in time)."""


class TooLarge(NotAcknowledged):
    """A record is over the producer's or the broker's message size limit: it never will be."""


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class _Acks:
    """Counts one request's outstanding deliveries; only the poll thread touches ``remaining``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = n
        self.error: KafkaError | None = None

    def __call__(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None and self.error is None:
            self.error = err
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():  # the request gave up waiting already
            return
        if self.error is None:
            self.future.set_result(None)
        elif self.error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self.future.set_exception(TooLarge(self.error.str()))
        else:
            self.future.set_exception(NotAcknowledged(self.error.str()))


class AsyncProducer:
    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, records: Sequence[Record], timeout_s: float) -> None:
        """Produce ``records`` and wait until the broker has all of them (acks=all). Raises
        ``NotAcknowledged`` on a delivery error, a full local queue or the timeout; ``TooLarge``
        when a record is over the size limit (the caller checks sizes first, so that a refused
        batch has sent nothing)."""
        if not records:
            return
        acks = _Acks(asyncio.get_running_loop(), len(records))
        for r in records:
            headers: Headers = list(r.headers)
            try:
                self._producer.produce(r.topic, r.value, r.key, headers=headers, on_delivery=acks)
            except BufferError:
                # The local queue is full: the broker is not keeping up. Those produced already
                # may still be delivered; the client's resend is deduplicated downstream.
                acks.future.cancel()  # so that their callbacks settle nothing
                raise NotAcknowledged("the producer queue is full") from None
            except KafkaException as exc:
                acks.future.cancel()
                error = exc.args[0]
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise TooLarge(f"{len(r.value)} bytes: {error.str()}") from None
                raise NotAcknowledged(error.str()) from None
        try:
            # On timeout wait_for cancels the future; late callbacks then find it done.
            await asyncio.wait_for(acks.future, timeout_s)
        except TimeoutError:
            raise NotAcknowledged(f"no acknowledgement within {timeout_s:g} s") from None

    def close(self, timeout_s: float) -> None:
        self._stop.set()
        self._thread.join()
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("%d records not acknowledged at shutdown", left)

    def reachable(self, timeout_s: float) -> bool:
        try:
            self._producer.list_topics(timeout=timeout_s)
            return True
        except Exception:
            return False
