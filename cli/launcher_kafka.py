"""A single-node Apache Kafka (KRaft, broker and controller in one JVM) for the local stack.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache shared by every
checkout (``~/.cache/da-pipeline/kafka-<version>``, or ``DA_KAFKA_HOME``); a marker written after
a complete fetch makes later fetches free. Everything the broker writes (data, logs, pid file,
config) lives in ``<state dir>/kafka``. ``python -m cli.launcher_kafka fetch`` pre-fetches the
jars (``make deps`` does).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import settings
from common.kafka import ServiceUnavailable

KAFKA_VERSION = "4.1.1"
DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
_HEAP = ("-Xms256m", "-Xmx1g")
# A pid can be recycled after the broker dies; only a process running this class is ours.
_MAIN_CLASS = "kafka.Kafka"


def kafka_home() -> Path:
    return settings.kafka_home(version=KAFKA_VERSION)


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ServiceUnavailable(f"`{tool}` not found on PATH; run `make deps` to install it")
    return path


def fetch_jars(home: Path | None = None) -> Path:
    """Download the broker's jars once; returns the directory that holds them.

    The marker holds a hash of the pom, so editing the pom refetches. A lock keeps two
    concurrent callers (``make deps`` and a test session, say) from fetching over each other.
    """
    home = kafka_home() if home is None else home
    pom = DEPLOY_DIR / "pom.xml"
    libs, marker = home / "libs", home / "libs.complete"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        mvn = _require("mvn")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        print(f"fetching Kafka {KAFKA_VERSION} jars into {libs} (once) ...", file=sys.stderr)
        goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
        cmd = [mvn, "-B", "-f", str(pom), *goal, f"-DoutputDirectory={staging}"]
        returncode, lines = _run_showing_downloads(cmd)
        if returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            errors = [line for line in lines if line.startswith("[ERROR]")] or lines
            reason = errors[-1] if errors else f"exit code {returncode}"
            raise ServiceUnavailable(
                f"could not fetch the Kafka jars with Maven ({reason}); "
                "check access to Maven Central and rerun `make deps`"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.write_text(digest + "\n")
    return libs


_DOWNLOADED = re.compile(r"^Downloaded from \S+: \S+ \(([\d.]+) (B|kB|MB|GB) at ")
_UNITS = {"B": 1, "kB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}


def downloaded_bytes(line: str) -> int | None:
    """The size of a file Maven reports downloaded ("Downloaded from central: URL (1.2 MB at
    ...)"); None for any other line."""
    found = _DOWNLOADED.match(line)
    return int(float(found.group(1)) * _UNITS[found.group(2)]) if found else None


def _run_showing_downloads(cmd: list[str]) -> tuple[int, list[str]]:
    """Run Maven, showing how many files and megabytes it has downloaded so far (one line,
    rewritten on a terminal; every 10 files otherwise). Returns its status and output lines."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    files, size = 0, 0
    tty = sys.stderr.isatty()
    assert proc.stdout is not None  # piped above
    for line in proc.stdout:
        lines.append(line.rstrip())
        got = downloaded_bytes(line)
        if got is None:
            continue
        files, size = files + 1, size + got
        if tty or files % 10 == 0:
            text = f"  downloaded {files} files, {size / 1e6:.1f} MB"
            print(f"\r{text}" if tty else text, end="" if tty else "\n", file=sys.stderr)
    returncode = proc.wait()
    if files:
        print(f"{chr(13) if tty else ''}  downloaded {files} files, {size / 1e6:.1f} MB: done",
              file=sys.stderr)  # fmt: skip
    return returncode, lines


# -- process helpers ---------------------------------------------------------------------------


# Ports this process handed out: a server started a moment ago may not have bound its port yet,
# and the kernel would hand the same one to the next service of the stack.
_handed_out: set[int] = set()


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free (stable addresses across restarts), else any free port;
    a new one is never one this process handed out already (``preferred`` is the same service's
    own port from before, so it may be)."""
    for _ in range(50):
        port = _bindable(preferred)
        if port == preferred or port not in _handed_out:
            _handed_out.add(port)
            return port
        preferred = None
    raise ServiceUnavailable("no free TCP port on 127.0.0.1")


def _bindable(preferred: int | None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            # As the servers bind: with SO_REUSEADDR (Java and PostgreSQL both set it), so the
            # TIME_WAIT connections a restarted server leaves behind do not make its port look
            # taken and move it to a new address its clients would never find.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ServiceUnavailable("no free TCP port on 127.0.0.1")


def port_open(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def process_running(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive (not a zombie) and its command line contains ``marker``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and marker in cmdline


def terminate(
    pid: int, marker: str, grace_s: float, first: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``first`` (SIGTERM), wait up to ``grace_s`` for a clean exit, then SIGKILL."""
    for sig, wait_s in ((first, grace_s), (signal.SIGKILL, 5.0)):
        if not process_running(pid, marker):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and process_running(pid, marker):
            time.sleep(0.1)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


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
# The broker is started through a shell that exits at once: it is re-parented to init, keeps
# running after the CLI exits, and the caller is left with no child process to reap.
_DETACH = 'log=$1 pidf=$2; shift 2; "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pidf"'


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
        _require("java"),
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
    console, pid_file = logs / "console.log", root / "kafka.pid"
    pid_file.unlink(missing_ok=True)
    command = [*java, *_HEAP, _MAIN_CLASS, str(config)]
    subprocess.run(
        ["sh", "-c", _DETACH, "sh", str(console), str(pid_file), *command],
        check=True,
        start_new_session=True,
    )
    pid = read_int(pid_file)
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


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print("usage: python -m cli.launcher_kafka fetch", file=sys.stderr)
        return 2
    try:
        libs = fetch_jars()
    except ServiceUnavailable as exc:
        print(f"da: {exc}", file=sys.stderr)
        return 2
    print(f"Kafka {KAFKA_VERSION} jars ready in {libs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
