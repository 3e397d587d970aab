"""A Kafka node (KRaft, broker and controller in one JVM) for the local stack, and the
single-node broker the stack runs by default (``cli/stack/cluster.py`` runs three).

The jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache shared by every
checkout (``~/.cache/da-pipeline/kafka-<version>``, or ``DA_KAFKA_HOME``; ``cli/stack/fetch.py``).
Everything a node writes (data, logs, pid file, config) lives in its own folder: the single
broker's is ``<state dir>/kafka``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
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
from common import stack_paths
from common.kafka import ServiceUnavailable, min_insync_replicas

KAFKA_VERSION = "4.1.1"
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
_HEAP = ("-Xms256m", "-Xmx1g")
# A pid can be recycled after the broker dies; only a process running this class is ours.
_MAIN_CLASS = "kafka.Kafka"


def kafka_home() -> Path:
    return stack_paths.kafka_home(version=KAFKA_VERSION)


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


# -- one node ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One KRaft node's folder and id."""

    root: Path
    node_id: int = 1

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def pid(self) -> int | None:
        """The node's process when it runs (paused included)."""
        pid = read_int(self.root / "kafka.pid")
        return pid if pid is not None and process_running(pid, _MAIN_CLASS) else None

    def ports(self) -> tuple[int, int] | None:
        """The (client, controller) ports of its last start."""
        try:
            port, controller = (int(p) for p in (self.root / "ports").read_text().split())
        except (OSError, ValueError):
            return None
        return port, controller

    def address(self) -> str | None:
        """The node's client address when it runs and accepts connections."""
        ports = self.ports()
        if self.pid() is None or ports is None or not port_open(ports[0]):
            return None
        return f"127.0.0.1:{ports[0]}"


def new_cluster_id() -> str:
    # Kafka's own format (Uuid.randomUuid): url-safe base64 of 16 bytes, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# A static voter set (not `--standalone`) lets the ports change between restarts of one data dir.
# Internal topics get 10 partitions, not 50: the first consumer group and transaction come faster.
# The replication settings are the cluster's size: 1 on one broker, 3 (and 2 in sync) on three.
_SERVER_PROPERTIES = """\
# Written by `da stack up`; rewritten at every start.
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{extra_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{extra_listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{extra_protocol}
log.dirs={data}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
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


def write_config(
    node: Node, ports: tuple[int, int], voters: str, replicas: int, extra: Listener | None = None
) -> Path:
    """The node's server.properties for this start; ``voters`` is every controller,
    ``id@host:port,...``."""
    node.logs.mkdir(parents=True, exist_ok=True)
    node.data.mkdir(parents=True, exist_ok=True)
    (node.root / "ports").write_text(f"{ports[0]} {ports[1]}\n")
    config = node.root / "server.properties"
    config.write_text(
        _SERVER_PROPERTIES.format(
            node_id=node.node_id,
            voters=voters,
            port=ports[0],
            controller_port=ports[1],
            data=node.data,
            replicas=replicas,
            min_isr=min_insync_replicas(replicas),
            **(extra.render() if extra else _NO_LISTENER),
        )
    )
    return config


def _java(logs: Path) -> list[str]:
    return [
        require("java"),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
        "-cp",
        f"{fetch_jars()}/*",
    ]


def format_storage(node: Node, cluster_id: str) -> None:
    """Format the node's data dir for ``cluster_id`` (every node of a cluster shares one)."""
    config = node.root / "server.properties"
    cmd = [*_java(node.logs), "kafka.tools.StorageTool", "format", "-t", cluster_id]
    fmt = subprocess.run([*cmd, "-c", str(config)], capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        output = (fmt.stdout + fmt.stderr).strip()[-500:]
        raise ServiceUnavailable(f"formatting Kafka storage in {node.data} failed: {output}")


def spawn(node: Node, heap: tuple[str, ...] = _HEAP) -> int:
    """Start the node from its written config, detached; returns its pid."""
    console = node.logs / "console.log"
    config = node.root / "server.properties"
    pid = detach(
        [*_java(node.logs), *heap, _MAIN_CLASS, str(config)], console, node.root / "kafka.pid"
    )
    if pid is None:
        raise ServiceUnavailable(f"Kafka did not start; {console} ends with:\n{tail(console)}")
    return pid


def _log_tail(logs: Path) -> str:
    # JVM-level failures (bad flags, missing classes) land in console.log, the rest in server.log.
    console = logs / "console.log"
    text = tail(logs / "server.log")
    if console.is_file() and console.stat().st_size:
        text += f"\n--- {console}:\n{tail(console, 8)}"
    return text


def wait_ready(node: Node, pid: int, timeout_s: float) -> str:
    """The node's address once it serves metadata that lists it as a broker (a restarted node
    of a cluster: registered and unfenced); stops it and raises when it does not in time."""
    from confluent_kafka.admin import AdminClient  # only the running broker needs the client

    ports = node.ports()
    bootstrap = f"127.0.0.1:{ports[0] if ports else 0}"
    # Silent: "connection refused" is expected until the broker is up.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0}
    config["error_cb"] = lambda _err: None
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    problem = f"did not answer on {bootstrap} within {timeout_s:.0f}s"
    while time.monotonic() < deadline:
        if not process_running(pid, _MAIN_CLASS):
            problem = "exited during start-up (`da stack down --purge` resets its data)"
            break
        try:
            if node.node_id in admin.list_topics(timeout=2).brokers:
                return bootstrap
        except Exception:
            pass
        time.sleep(0.3)
    terminate(pid, _MAIN_CLASS, grace_s=5.0)
    raise ServiceUnavailable(
        f"Kafka node {node.node_id} {problem}; "
        f"{node.logs}/server.log ends with:\n{_log_tail(node.logs)}"
    )


def pick_ports(node: Node) -> tuple[int, int]:
    """The ports of the node's previous run when they are still free, else new ones."""
    previous = node.ports()
    port = free_port(previous[0] if previous else None)
    controller_port = free_port(previous[1] if previous else None)
    if controller_port == port:
        controller_port = free_port()
    return port, controller_port


def stop_node(node: Node, grace_s: float = 30.0) -> bool:
    """Controlled shutdown, then SIGKILL; True when the node was running."""
    pid = node.pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a paused node would sleep through its SIGTERM
        terminate(pid, _MAIN_CLASS, grace_s=grace_s)
    (node.root / "kafka.pid").unlink(missing_ok=True)
    return pid is not None


# -- the single broker of the default stack ----------------------------------------------------


def single(state: Path) -> Node:
    return Node(state / "kafka")


def start(state: Path, timeout_s: float = 90.0, extra: Listener | None = None) -> str:
    """Start the broker unless it runs already; returns its (plaintext) bootstrap address.
    ``extra``: one more listener (tests of a secured cluster)."""
    node = single(state)
    running = node.address()
    if running is not None:
        return running
    ports = pick_ports(node)
    write_config(node, ports, f"1@127.0.0.1:{ports[1]}", replicas=1, extra=extra)
    if not node.formatted:
        format_storage(node, new_cluster_id())
    return wait_ready(node, spawn(node), timeout_s)


def status(state: Path) -> str | None:
    """The bootstrap address when the broker runs and its port accepts connections."""
    return single(state).address()


def stop(state: Path) -> bool:
    """Stop the broker (controlled shutdown, then SIGKILL); True when one was running."""
    return stop_node(single(state))
