"""A single-node Apache Kafka (KRaft, broker and controller in one JVM) for the local stack.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache shared by every
checkout (``~/.cache/da-pipeline/kafka-<version>``, or ``DA_KAFKA_HOME``; ``cli/stack/fetch.py``).
Everything the broker writes (data, logs, pid file, config) lives in ``<state dir>/kafka``.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.stack.fetch import Fetch, fetch_once
from cli.stack.procs import (
    detach,
    free_port,
    port_open,
    process_running,
    read_int,
    require,
    tail,
    terminate,
)
from common import settings
from common.kafka import ServiceUnavailable

KAFKA_VERSION = "4.1.1"
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
_HEAP = ("-Xms256m", "-Xmx1g")
# A pid can be recycled after the broker dies; only a process running this class is ours.
_MAIN_CLASS = "kafka.Kafka"


def kafka_home() -> Path:
    return settings.kafka_home(version=KAFKA_VERSION)


def fetch_jars(home: Path | None = None) -> Path:
    """Download the broker's jars once; returns the directory that holds them. The marker holds
    a hash of the pom, so editing the pom fetches again."""
    pom = DEPLOY_DIR / "pom.xml"
    return fetch_once(
        Fetch(
            what=f"Kafka {KAFKA_VERSION} jars",
            home=kafka_home() if home is None else home,
            target="libs",
            stamp=hashlib.sha256(pom.read_bytes()).hexdigest(),
            goal=("dependency:copy-dependencies", "-DincludeScope=runtime"),
            expect="kafka_2.13-*.jar",
            pom=pom,
        )
    )


# -- the broker --------------------------------------------------------------------------------


def _dirs(state: Path) -> tuple[Path, Path, Path]:
    root = state / "kafka"
    return root, root / "data", root / "logs"


def _running_pid(state: Path) -> int | None:
    pid = read_int(_dirs(state)[0] / "kafka.pid")
    return pid if pid is not None and process_running(pid, _MAIN_CLASS) else None


def _cluster_id() -> str:
    # Kafka's own format (Uuid.randomUuid): url-safe base64 of 16 bytes, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# A static voter set (not `--standalone`) lets the ports change between restarts of one data dir.
# Internal topics get 10 partitions, not 50: the first consumer group and transaction come faster.
_SERVER_PROPERTIES = """\
# Written by `da stack up`; rewritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{extra_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{extra_listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{extra_protocol}
log.dirs={data}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
{extra_properties}"""


@dataclass(frozen=True)
class Listener:
    """A listener beside PLAINTEXT, e.g. SASL_SSL to test a secured cluster (``tests/tls.py``
    builds one): its protocol (also its name), port, and the broker properties it needs."""

    protocol: str
    port: int
    properties: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> dict[str, str]:
        lines = "".join(f"{k}={v}\n" for k, v in self.properties.items())
        return {
            "extra_listener": f",{self.protocol}://127.0.0.1:{self.port}",
            "extra_protocol": f",{self.protocol}:{self.protocol}",
            "extra_properties": lines,
        }


_NO_LISTENER = {"extra_listener": "", "extra_protocol": "", "extra_properties": ""}


def _log_tail(logs: Path) -> str:
    # JVM-level failures (bad flags, missing classes) land in console.log, the rest in server.log.
    console = logs / "console.log"
    text = tail(logs / "server.log")
    if console.is_file() and console.stat().st_size:
        text += f"\n--- {console}:\n{tail(console, 8)}"
    return text


def _wait_ready(bootstrap: str, pid: int, logs: Path, timeout_s: float) -> None:
    from confluent_kafka.admin import AdminClient  # only the running broker needs the client

    # Silent: "connection refused" is expected until the broker is up.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0}
    config["error_cb"] = lambda _err: None
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process_running(pid, _MAIN_CLASS):
            raise ServiceUnavailable(
                f"Kafka exited during start-up (`da stack down --purge` resets its data); "
                f"{logs}/server.log ends with:\n{_log_tail(logs)}"
            )
        try:
            if admin.list_topics(timeout=2).brokers:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise ServiceUnavailable(
        f"Kafka did not answer on {bootstrap} within {timeout_s:.0f}s; "
        f"{logs}/server.log ends with:\n{_log_tail(logs)}"
    )


def _pick_ports(root: Path) -> tuple[int, int]:
    """The ports of the previous run when they are still free, else new ones."""
    previous = (
        [int(p) for p in (root / "ports").read_text().split()] if (root / "ports").is_file() else []
    )
    port = free_port(previous[0] if len(previous) == 2 else None)
    controller_port = free_port(previous[1] if len(previous) == 2 else None)
    if controller_port == port:
        controller_port = free_port()
    (root / "ports").write_text(f"{port} {controller_port}\n")
    return port, controller_port


def _format_storage(java: list[str], data: Path, config: Path) -> None:
    cmd = [*java, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)]
    fmt = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        output = (fmt.stdout + fmt.stderr).strip()[-500:]
        raise ServiceUnavailable(f"formatting Kafka storage in {data} failed: {output}")


def start(state: Path, timeout_s: float = 90.0, extra: Listener | None = None) -> str:
    """Start the broker unless it runs already; returns its (plaintext) bootstrap address.
    ``extra``: one more listener (tests of a secured cluster)."""
    running = status(state)
    if running is not None:
        return running
    root, data, logs = _dirs(state)
    java = [
        require("java"),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
        "-cp",
        f"{fetch_jars()}/*",
    ]
    logs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    port, controller_port = _pick_ports(root)
    config = root / "server.properties"
    config.write_text(
        _SERVER_PROPERTIES.format(
            port=port,
            controller_port=controller_port,
            data=data,
            **(extra.render() if extra else _NO_LISTENER),
        )
    )
    if not (data / "meta.properties").is_file():
        _format_storage(java, data, config)
    console = logs / "console.log"
    pid = detach([*java, *_HEAP, _MAIN_CLASS, str(config)], console, root / "kafka.pid")
    if pid is None:
        raise ServiceUnavailable(f"Kafka did not start; {console} ends with:\n{tail(console)}")
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(bootstrap, pid, logs, timeout_s)
    except ServiceUnavailable:
        terminate(pid, _MAIN_CLASS, grace_s=5.0)
        raise
    return bootstrap


def status(state: Path) -> str | None:
    """The bootstrap address when the broker runs and its port accepts connections."""
    root = _dirs(state)[0]
    ports = (root / "ports").read_text().split() if (root / "ports").is_file() else []
    if _running_pid(state) is None or not ports or not port_open(int(ports[0])):
        return None
    return f"127.0.0.1:{ports[0]}"


def stop(state: Path) -> bool:
    """Stop the broker (controlled shutdown, then SIGKILL); True when one was running."""
    pid = _running_pid(state)
    if pid is not None:
        terminate(pid, _MAIN_CLASS, grace_s=30.0)
    (_dirs(state)[0] / "kafka.pid").unlink(missing_ok=True)
    return pid is not None
