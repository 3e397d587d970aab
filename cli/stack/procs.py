"""What every launcher of the local stack does with processes and ports: find a tool, pick a
port, start a server detached, tell whether it still runs, stop it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from common.kafka import ServiceUnavailable


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ServiceUnavailable(f"`{tool}` not found on PATH; run `make deps` to install it")
    return path


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
    """True when ``pid`` is alive (not a zombie) and its command line contains ``marker``.

    A live process's command line reads empty for a moment in two cases: inside its execve
    (a registry just started was taken for dead, "exited 0s after its start", in a loaded test
    run) and while it exits. Either passes within moments, so an empty one is read again."""
    for _ in range(40):
        if _state(pid) in (None, "Z", "X"):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
        if cmdline:
            return marker in cmdline
        time.sleep(0.05)
    return False


def terminate(
    pid: int, marker: str, grace_s: float, first: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``first`` (SIGTERM), wait up to ``grace_s`` for a clean exit, then SIGKILL."""
    for i, (sig, wait_s) in enumerate(((first, grace_s), (signal.SIGKILL, 5.0))):
        if not process_running(pid, marker):
            if i:  # it was ours a moment ago: wait for its exit to finish
                _until_exited(pid)
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and process_running(pid, marker):
            time.sleep(0.1)
    _until_exited(pid)


def _until_exited(pid: int, timeout_s: float = 5.0) -> None:
    """Until ``pid`` is gone or a zombie. An exiting process's command line reads empty before
    its files are closed: a registry "stopped" by the marker's absence still held its database's
    file lock, and the next start failed on it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _state(pid) not in (None, "Z", "X"):
        time.sleep(0.05)


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, D, Z, X, ...); None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


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


# Started through a shell that exits at once: the server is re-parented to init, keeps running
# after the CLI exits, and the caller is left with no child process to reap.
_DETACH = 'log=$1 pidf=$2; shift 2; "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pidf"'


def detach(command: list[str], log: Path, pid_file: Path, cwd: Path | None = None) -> int | None:
    """Start ``command`` in its own session, output appended to ``log``; returns its pid (also
    written to ``pid_file``), None when it could not be started."""
    pid_file.unlink(missing_ok=True)
    subprocess.run(
        ["sh", "-c", _DETACH, "sh", str(log), str(pid_file), *command],
        check=True,
        cwd=cwd,
        start_new_session=True,
    )
    return read_int(pid_file)
