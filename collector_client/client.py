"""The client: a queue, one sender thread, batches, retries. Only httpx and the standard library,
so an application needs nothing else of the pipeline."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

log = logging.getLogger(__name__)
_RETRY = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Rejected:
    """A batch the collector refused (or that could not be delivered after every retry)."""

    status: int | None  # None: never answered
    answer: Any
    events: int


class Collector:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        max_retries: int = 8,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        max_queue: int = 100_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.max_backoff_s = max_backoff_s
        self.max_queue = max_queue
        self.sent = 0
        self.retries = 0
        self.rejected: list[Rejected] = []
        self._queue: deque[bytes] = deque()
        self._busy = 0  # events taken from the queue and not yet answered
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="collector-client", daemon=True)
        self._thread.start()

    def send(
        self,
        session_id: str,
        category: str,
        name: str,
        data: dict[str, Any],
        timestamp: datetime | str | None = None,
    ) -> None:
        """Queue one event (``timestamp`` defaults to now, UTC). Raises ``BufferError`` when
        ``max_queue`` events wait already: the collector is away or too slow for the caller."""
        if timestamp is None:
            timestamp = datetime.now(UTC)
        ts = timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp
        event = {
            "session_id": session_id,
            "category": category,
            "name": name,
            "data": data,
            "timestamp": ts,
        }
        encoded = json.dumps(event, separators=(",", ":")).encode()
        with self._cond:
            if self._closing:
                raise RuntimeError("the client is closed")
            if len(self._queue) >= self.max_queue:
                raise BufferError(f"{self.max_queue} events wait to be sent")
            self._queue.append(encoded)
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued event was answered; False if ``timeout_s`` passed first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Send what is queued (for at most ``timeout_s``), then stop."""
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        self._http.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sender thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.flush_interval_s)
                if len(self._queue) < self.batch_size and not self._closing:
                    # Give a partial batch until the interval to fill up.
                    self._cond.wait(self.flush_interval_s)
                if not self._queue:
                    if self._closing:
                        return
                    continue
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                self._busy = len(batch)
            try:
                self._deliver(b"[" + b",".join(batch) + b"]", len(batch))
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def _deliver(self, body: bytes, n: int) -> None:
        """Post one batch, retrying what may succeed later; the same bytes every time, so the
        collector recognizes a resent event."""
        status: int | None = None
        answer: Any = None
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff_s, 0.1 * 2**attempt) * (0.5 + random.random() / 2)
            try:
                response = self._http.post("/v1/events", content=body)
            except httpx.TransportError as exc:
                status, answer = None, str(exc)
            else:
                status, answer = response.status_code, _answer(response)
                if status == 202:
                    self.sent += n
                    return
                if status not in _RETRY:
                    break
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    wait = min(self.max_backoff_s, float(retry_after))
            if attempt < self.max_retries:
                self.retries += 1
                log.info("collector: %s, retrying in %.1fs", status or answer, wait)
                time.sleep(wait)
        log.warning("collector refused %d events: %s %s", n, status, answer)
        self.rejected.append(Rejected(status, answer, n))


def _answer(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
