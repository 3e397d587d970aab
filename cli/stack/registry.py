"""A Confluent-compatible schema registry (Apicurio Registry) for the local stack.

The registry's distribution comes from Maven Central once, into the cache the Kafka jars share
(``~/.cache/da-pipeline/apicurio-registry-<version>``, or ``DA_SCHEMA_REGISTRY_HOME``), unpacked
behind a marker like the broker's jars. It runs on the installed Java 17 and keeps its schemas in
an H2 file under ``<state dir>/registry``: a restarted registry must hand out the same ids,
because records on the topics carry them. The Confluent API is under ``/apis/ccompat/v7``.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from cli.stack.fetch import Fetch, fetch_once
from cli.stack.procs import (
    detach,
    free_port,
    process_running,
    read_int,
    require,
    tail,
    terminate,
)
from common import stack_paths
from common.kafka import ServiceUnavailable

VERSION = "3.0.9"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
_RUNNER = f"apicurio-registry-app-{VERSION}-runner.jar"
API_PATH = "/apis/ccompat/v7"
# A pid can be recycled after the registry dies; only a process running our jar is ours.
_MARKER = _RUNNER
# Start-up is class loading: C1 only and a serial collector start it about twice as fast, and
# a registry answering a few lookups per stage start never needs C2. Its connection pool
# defaults to 20 idle connections to an embedded database that needs two.
_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xms64m", "-Xmx384m")
_POOL = ("initial-size=2", "min-size=2", "max-size=10")


def registry_home() -> Path:
    return stack_paths.schema_registry_home(version=VERSION)


def fetch(home: Path | None = None) -> Path:
    """Download and unpack the registry once; returns the directory holding its runner jar."""
    return fetch_once(
        Fetch(
            what=f"Apicurio Registry {VERSION}",
            home=registry_home() if home is None else home,
            target="app",
            stamp=_ARTIFACT,
            goal=("dependency:copy", f"-Dartifact={_ARTIFACT}"),
            expect=_RUNNER,
            unpack=True,
        )
    )


def _root(state: Path) -> Path:
    return state / "registry"


def _running_pid(state: Path) -> int | None:
    pid = read_int(_root(state) / "registry.pid")
    return pid if pid is not None and process_running(pid, _MARKER) else None


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when a Confluent-compatible registry at ``url`` lists its subjects."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def spawn(state: Path) -> None:
    """Start the registry process unless it runs already, without waiting for it to answer.

    The stack starts it first and waits last: its JVM warms up while the broker starts.
    """
    if _running_pid(state) is not None:
        return
    java = require("java")
    app, root = fetch(), _root(state)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port(read_int(root / "port"))
    (root / "port").write_text(f"{port}\n")
    command = [
        java,
        *_JVM,
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.http.host=127.0.0.1",
        # One log line per HTTP request otherwise: megabytes over a test run, nothing to learn.
        "-Dquarkus.http.access-log.enabled=false",
        f"-Dapicurio.datasource.url=jdbc:h2:file:{root / 'db' / 'registry'}",
        *(f"-Dapicurio.datasource.jdbc.{setting}" for setting in _POOL),
        f"-Dapicurio.import.work-dir={root}",
        f"-Dapicurio.storage.snapshot.location={root}",
        "-jar",
        str(app / _RUNNER),
    ]
    # Detached like the broker: it outlives the CLI that started it.
    detach(command, root / "console.log", root / "registry.pid", cwd=root)


def wait_ready(state: Path, timeout_s: float = 120.0) -> str:
    """The registry's URL once it answers; stops it and raises if it does not in time.

    A JVM that exits before answering is started once more: a start can die of something
    passing (a port taken between choosing and binding it; once, in CI, of something that left
    no line in its console), and the stack is not up until the registry answers. The error says
    which it was, gone or silent, and after how long.
    """
    root = _root(state)
    started = time.monotonic()
    deadline = started + timeout_s
    for attempt in (1, 2):
        pid, port = _running_pid(state), read_int(root / "port")
        url = f"http://127.0.0.1:{port}{API_PATH}"
        while pid is not None and process_running(pid, _MARKER) and time.monotonic() < deadline:
            if answers(url):
                return url
            time.sleep(0.2)
        if pid is not None and process_running(pid, _MARKER):
            terminate(pid, _MARKER, grace_s=5.0)
            what = f"did not answer within {timeout_s:.0f}s"
            break
        what = f"exited {time.monotonic() - started:.0f}s after its start without answering"
        if attempt == 1 and time.monotonic() < deadline:
            spawn(state)
    raise ServiceUnavailable(
        f"the schema registry on {url} {what}; "
        f"{root / 'console.log'} ends with:\n{tail(root / 'console.log')}"
    )


def start(state: Path) -> str:
    """Start the registry unless it runs already; returns its Confluent-compatible URL."""
    spawn(state)
    return wait_ready(state)


def status(state: Path) -> str | None:
    """The registry's URL when it runs and answers."""
    port = read_int(_root(state) / "port")
    if _running_pid(state) is None or port is None:
        return None
    url = f"http://127.0.0.1:{port}{API_PATH}"
    return url if answers(url) else None


def stop(state: Path) -> bool:
    """Stop the registry; True when one was running."""
    pid = _running_pid(state)
    if pid is not None:
        terminate(pid, _MARKER, grace_s=15.0)
    (_root(state) / "registry.pid").unlink(missing_ok=True)
    return pid is not None
