"""A bound on librdkafka calls that can hang, and the exit of a process whose client did.

librdkafka does not always honour its transaction calls' timeouts (its issues 5456 and 5511: after
the group coordinator went away, send_offsets_to_transaction can wait for good, deaf to SIGTERM).
A call that outlives its bound means a wedged client: the process ends without committing
(``EXIT_WEDGED``), for the orchestrator to restart, and the new instance's init_transactions
aborts what is open.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

log = logging.getLogger(__name__)
EXIT_WEDGED = 3  # the process status when a Kafka client hung; the orchestrator restarts it


class Watchdog:
    """Bounds blocking calls made one at a time (by one processor or relay), each to ``limit_s``.

    The call runs on the caller's thread; one long-lived thread, started on the first call,
    watches its deadline. A stage makes two or three such calls per batch: starting a thread for
    each (the way this was first done) cost more than the deadline's bookkeeping here, a lock
    taken twice per call. librdkafka releases the GIL while it waits, so the watcher runs while
    the caller is stuck, and ``wedged`` (``exit_wedged``: it does not return) ends the process
    from the watcher's thread."""

    def __init__(self, limit_s: float, wedged: Callable[[str], None]) -> None:
        self.limit_s = limit_s
        self._wedged = wedged
        self._cond = threading.Condition()
        self._deadline: float | None = None  # of the call in progress
        self._watcher: threading.Thread | None = None
        self._closed = False

    def run(self, call: Callable[[], None]) -> None:
        with self._cond:
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="txn-watch", daemon=True)
                self._watcher.start()
            self._deadline = time.monotonic() + self.limit_s
            self._cond.notify()
        try:
            call()
        finally:
            # No notify: the watcher wakes at the old deadline, finds none, and waits again.
            with self._cond:
                self._deadline = None

    def wedged(self, why: str) -> None:
        """Take the client for wedged now (``wedged``, given at construction)."""
        self._wedged(why)

    def close(self) -> None:
        """End the watcher (between calls); a later ``run`` starts another."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._watcher is not None:
            self._watcher.join()
        self._watcher, self._closed = None, False

    def _watch(self) -> None:
        while True:
            with self._cond:
                while True:
                    deadline = self._deadline
                    if deadline is None:
                        if self._closed:
                            return
                        self._cond.wait()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._deadline = None  # reported once
            self._wedged(f"a transaction call ran past {self.limit_s:.0f}s")


def until_done(
    watchdog: Watchdog,
    call: Callable[[], None],
    *,
    give_up: Callable[[], bool],
    wait: Callable[[float], object],
    bounded: bool = True,
) -> None:
    """Run a transaction call, repeating it while librdkafka says the error is retriable.

    A retriable error (a timeout, most often) leaves the call's outcome open: a commit may
    complete in the background. librdkafka wants the same call again, and any other call (abort,
    say) fails with a conflict, so nothing is aborted here. ``give_up()``, asked after each
    retriable error, ends the repeats by raising that error.

    ``bounded``: repeats past the watchdog's limit take the client for wedged as a hung call
    is. A client can also fail every repeat at once, for good: a demux went on failing
    send_offsets_to_transaction ("Broker transport failure", "Timed out") for minutes after its
    broker was back, through its SIGTERM. The wedged callback ends the process (for a restart
    whose init_transactions aborts what is open); one that returns lets the error be raised."""
    started = time.monotonic()
    delay = 0.2
    while True:
        try:
            watchdog.run(call)
            return
        except KafkaException as exc:
            if not retriable(exc) or give_up():
                raise
            if bounded and time.monotonic() - started > watchdog.limit_s:
                watchdog.wedged(f"a transaction call kept failing: {exc}")
                raise
            log.warning("transaction call failed, retrying in %.1fs: %s", delay, exc.args[0].str())
            wait(delay)
            delay = min(5.0, delay * 2)


def retriable(exc: KafkaException) -> bool:
    """librdkafka says: the same transaction call again (not an abort, not the end)."""
    err = exc.args[0]
    return (
        isinstance(err, KafkaError)
        and bool(err.retriable())
        and not err.txn_requires_abort()
        and not err.fatal()
    )


def exit_wedged(why: str) -> None:
    # os._exit, not sys.exit: closing the wedged clients would hang as well, and nothing of the
    # open transaction may be committed on the way out.
    log.critical("%s: the Kafka client is wedged; exiting for a restart", why)
    logging.shutdown()
    os._exit(EXIT_WEDGED)
