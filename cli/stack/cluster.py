"""A three-broker Kafka cluster for the local stack (``da stack up --brokers 3``), and the faults
people and tests inject into it one broker at a time (``da stack broker kill 2``).

Every node is broker and controller in one JVM (KRaft combined mode), so three JVMs make the
cluster, not six: on a laptop or a 2-core test machine that is what matters, and a controller
quorum of three still survives the loss of any one node. Killing the active controller then
also kills a broker, the harder of the two faults. Node ``n`` lives in
``<state dir>/kafka/node-<n>``; ``<state dir>/kafka/brokers`` says how many there are.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cli.stack.kafka import (
    Node,
    format_storage,
    new_cluster_id,
    pick_ports,
    single,
    spawn,
    stop_node,
    wait_ready,
    write_config,
)
from cli.stack.procs import port_open, read_int
from common.kafka import ServiceUnavailable
from common.settings import SettingsError

SIZES = (1, 3)
ACTIONS = ("stop", "kill", "pause", "resume", "start", "restart")
# Three of them on one machine: half the single broker's heap each is plenty for a dev cluster.
_HEAP = ("-Xms128m", "-Xmx512m")


def size(state: Path) -> int:
    """How many brokers the stack in ``state`` has (1 unless started with ``--brokers``)."""
    return read_int(state / "kafka" / "brokers") or 1


def nodes(state: Path) -> list[Node]:
    """The cluster's nodes; none for the single broker (``kafka.single``)."""
    count = size(state)
    return [Node(state / "kafka" / f"node-{n}", n) for n in range(1, count + 1) if count > 1]


def choose_size(state: Path, brokers: int | None) -> int:
    """The stack's size for this start: ``brokers``, or what its data was made with. Data made
    for another size is refused (a cluster id and voter set cannot change in place)."""
    current = size(state)
    if brokers is None or brokers == current:
        return current
    if brokers not in SIZES:
        raise SettingsError(f"--brokers: {brokers} is not one of {', '.join(map(str, SIZES))}")
    made = single(state).formatted or any(node.formatted for node in nodes(state))
    if made:
        raise SettingsError(
            f"the stack in {state} has the data of {current} broker(s); "
            f"`da stack down --purge` first to start it with {brokers}"
        )
    (state / "kafka").mkdir(parents=True, exist_ok=True)
    (state / "kafka" / "brokers").write_text(f"{brokers}\n")
    return brokers


def _voters(ports: dict[int, tuple[int, int]]) -> str:
    return ",".join(f"{n}@127.0.0.1:{p[1]}" for n, p in sorted(ports.items()))


def _cluster_id(members: list[Node]) -> str:
    for node in members:
        if node.formatted:
            for line in (node.data / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
    return new_cluster_id()


def _ports(members: list[Node]) -> dict[int, tuple[int, int]]:
    """Each node's ports for this start. While any node runs, the others keep the ports the
    running ones know them by (the voter set is in their config); with none running, a node
    whose old ports were taken meanwhile gets new ones."""
    running = any(node.pid() is not None for node in members)
    ports = {}
    for node in members:
        previous = node.ports()
        if node.pid() is not None and previous is not None:
            ports[node.node_id] = previous
        elif running and previous is not None:
            if port_open(previous[0]) or port_open(previous[1]):
                raise ServiceUnavailable(
                    f"broker {node.node_id}'s ports {previous} are taken by another process; "
                    "`da stack down` and `da stack up` to give the cluster new ones"
                )
            ports[node.node_id] = previous
        else:
            ports[node.node_id] = pick_ports(node)
    return ports


def start(state: Path, timeout_s: float = 300.0, only: int | None = None) -> str:
    """Start every node that is not running (or just node ``only``); returns the bootstrap list
    of all of them."""
    members = nodes(state)
    ports = _ports(members)
    waiting = [n for n in members if n.pid() is None and only in (None, n.node_id)]
    cluster_id = _cluster_id(members)
    for node in waiting:
        write_config(node, ports[node.node_id], _voters(ports), replicas=len(members))

    def format_one(node: Node) -> None:
        if not node.formatted:
            format_storage(node, cluster_id)

    # Each format is a JVM start of its own: side by side they take the time of one.
    with ThreadPoolExecutor(len(members)) as pool:
        list(pool.map(format_one, waiting))
    pids = {node.node_id: spawn(node, _HEAP) for node in waiting}
    # A quorum needs two voters: every node is spawned before any is waited for.
    for node in waiting:
        wait_ready(node, pids[node.node_id], timeout_s)
    return bootstrap(state)


def bootstrap(state: Path) -> str:
    return ",".join(f"127.0.0.1:{ports[0]}" for node in nodes(state) if (ports := node.ports()))


def stop(state: Path) -> bool:
    """Stop every node (controlled shutdown, then SIGKILL); True when any was running."""
    members = nodes(state)
    with ThreadPoolExecutor(max(1, len(members))) as pool:
        return any(list(pool.map(stop_node, members)))


@dataclass(frozen=True)
class Broker:
    """One node as ``da stack status`` shows it."""

    number: int
    address: str
    state: str  # "up", "paused", "down" (or not answering)
    controller: bool  # the active controller, as the quorum last recorded it

    def line(self) -> str:
        role = ", active controller" if self.controller else ""
        return f"kafka broker {self.number}: {self.state} at {self.address}{role}"


def _paused(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
    except OSError:
        return False


def active_controller(state: Path) -> int | None:
    """The quorum's leader: the newest election any node has recorded (a node that is down or
    paused still remembers an older one, with a lower epoch)."""
    newest: tuple[int, int] | None = None
    for node in nodes(state):
        try:
            quorum = json.loads((node.data / "__cluster_metadata-0" / "quorum-state").read_text())
        except (OSError, ValueError):
            continue
        leader, epoch = int(quorum.get("leaderId", -1)), int(quorum.get("leaderEpoch", -1))
        if leader > 0 and (newest is None or epoch > newest[1]):
            newest = (leader, epoch)
    return newest[0] if newest else None


def brokers(state: Path) -> list[Broker]:
    controller = active_controller(state)
    shown = []
    for node in nodes(state):
        pid, ports = node.pid(), node.ports()
        address = f"127.0.0.1:{ports[0]}" if ports else "(never started)"
        if pid is not None and _paused(pid):
            now = "paused"
        else:
            now = "up" if node.address() is not None else "down"
        shown.append(Broker(node.node_id, address, now, node.node_id == controller))
    return shown


def act(state: Path, number: int, action: str, timeout_s: float = 300.0) -> str:
    """Do ``action`` (one of ``ACTIONS``) to broker ``number``; returns what was done."""
    members = {node.node_id: node for node in nodes(state)}
    if number not in members:
        raise SettingsError(
            f"broker {number}: the stack in {state} has brokers 1 to {len(members)}"
            if members
            else f"the stack in {state} runs one broker; start it with `da stack up --brokers 3`"
        )
    node, pid = members[number], members[number].pid()
    if action in ("stop", "restart"):
        stop_node(node)
    elif action == "kill" and pid is not None:
        os.kill(pid, signal.SIGKILL)
        while node.pid() is not None:  # reaped by init a moment later
            time.sleep(0.05)
    elif action in ("pause", "resume") and pid is not None:
        os.kill(pid, signal.SIGSTOP if action == "pause" else signal.SIGCONT)
    if action in ("start", "restart"):
        start(state, timeout_s, only=number)
    elif pid is None and action != "stop":
        return f"broker {number} was not running"
    return f"broker {number}: {action} done"
