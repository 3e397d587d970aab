"""A three-broker Kafka cluster for the tests that inject broker faults, apart from the
single-broker stack every other test shares (``tests/services.py``): its own state dir, started
once per module that asks for it, stopped at the end unless ``DA_TEST_KEEP_STACK`` is set.

Faults go through the real CLI (``da stack broker kill 2``), as a person would inject them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from cli.stack import cluster
from tests.e2e.pipeline import REPO, da

CLUSTER_DIR = REPO / ".da" / "test-cluster"
BROKERS = 3


@contextmanager
def running_cluster(state: Path = CLUSTER_DIR) -> Iterator[str]:
    """The cluster's bootstrap list while the block runs."""
    cluster.choose_size(state, BROKERS)
    bootstrap = cluster.start(state, timeout_s=300)
    try:
        yield bootstrap
    finally:
        if not os.environ.get("DA_TEST_KEEP_STACK"):
            cluster.stop(state)


def broker(action: str, number: int, state: Path = CLUSTER_DIR) -> float:
    """``da stack broker ACTION NUMBER``; returns the seconds it took."""
    began = time.monotonic()
    done = subprocess.run(
        da("stack", "broker", action, str(number)),
        env={**os.environ, "DA_STATE_DIR": str(state)},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"da stack broker {action} {number}: {done.stderr}"
    return time.monotonic() - began


def controller(state: Path = CLUSTER_DIR) -> int:
    found = cluster.active_controller(state)
    if found is None:
        raise AssertionError(f"no node of {state} has recorded a quorum leader")
    return found


INTERNAL = ("__consumer_offsets", "__transaction_state")


def replicas_out_of_sync(bootstrap: str, namespace: str) -> dict[str, set[int]]:
    """Per partition (``topic/n``) of the namespace's topics and the offsets and transaction
    logs, the replicas not in its ISR; {} when every one is in sync. ``bootstrap``: brokers
    that answer (a paused one would hold the request)."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": _quiet}
    admin = AdminClient(config)
    listed = admin.list_topics(timeout=10).topics
    missing: dict[str, set[int]] = {}
    for topic in listed:
        if not topic.startswith(f"{namespace}.") and topic not in INTERNAL:
            continue
        for number, partition in listed[topic].partitions.items():
            out = set(partition.replicas) - set(partition.isrs)
            if out or partition.error is not None:
                missing[f"{topic}/{number}"] = out
    return missing


def drop_topics(bootstrap: str, namespace: str) -> None:
    """Delete a test's topics: every partition left behind is one more a restarted broker
    recovers before it rejoins, and the cluster is kept between runs."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": _quiet}
    admin = AdminClient(config)
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(f"{namespace}.")]
    for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else ():
        future.result()


def _quiet(_err: object) -> None:
    """Refused connections to a broker that is down are expected here."""


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = 300,
    sleep: Callable[[float], object] = time.sleep,
) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took (fails past the timeout,
    which is generous: a loaded machine is slow, never wrong). ``sleep``: how to pass the time
    between polls (the chaos driver keeps its supervisor running)."""
    began = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - began
        except Exception:  # a broker between states answers with errors: ask again
            pass
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        sleep(0.5)
