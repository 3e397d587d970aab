"""A small client for the da-pipeline collector: batches events, retries with backoff.

    from collector_client import Collector
    with Collector("http://collector:8080", api_key) as eye:
        eye.send("e2085be5-...", "page interaction", "pageview", {"host": "x", "path": "/"})

``send`` only queues (it never blocks on the network); a background thread posts a batch when
``batch_size`` events are queued or ``flush_interval_s`` has passed. A batch that met a 429,
a 503 or a network error is retried with exponential backoff (honouring Retry-After); the
collector deduplicates resent events, so a retry after a lost answer adds nothing twice. A
batch refused as invalid (4xx) is not retried: it is kept in ``rejected`` with the reasons.
"""

from collector_client.client import Collector, Rejected

__all__ = ["Collector", "Rejected"]
