"""A private PostgreSQL cluster for the local stack, in ``<state dir>/pg``.

``initdb`` and ``postgres`` refuse to run as root, so as root every server command runs as the
``postgres`` OS user (created when missing) through ``runuser``, and the cluster's directories
belong to that user. Local TCP connections are trusted: this is a dev and test cluster bound to
127.0.0.1, never a deployment.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg

from cli.stack.procs import free_port, port_open, read_int, tail, terminate
from common.kafka import ServiceUnavailable

DATABASE = "da"
SUPERUSER = "postgres"
_OS_USER = "postgres"
# Linux limit on a unix socket path (sun_path) including the terminating NUL.
_SUN_PATH_MAX = 107

_CONF = """
# --- da-pipeline private dev/test cluster (written by `da stack up`) ---
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 128MB
logging_collector = off
log_min_messages = warning
include_if_exists = 'da_runtime.conf'
"""


def _dirs(state: Path) -> tuple[Path, Path, Path, Path]:
    root = state / "pg"
    return root, root / "data", root / "run", root / "log"


def bindir() -> Path:
    """Where initdb, pg_ctl and postgres live (Debian keeps them off PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; "
        "run `make deps` to install the `postgresql` package"
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", _OS_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _prepare_root_ownership(root: Path) -> None:
    """As root: make sure the postgres user exists, owns the cluster and can reach it."""
    try:
        pw = pwd.getpwnam(_OS_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                _OS_USER,
            ],
            check=True,
        )
        pw = pwd.getpwnam(_OS_USER)
    for path in [root, *(p for p in root.rglob("*"))]:
        if path.stat().st_uid != pw.pw_uid:
            os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    # Every ancestor needs the search bit for the postgres user (only x, never r, is added).
    for parent in root.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH and parent.stat().st_uid != pw.pw_uid:
            os.chmod(parent, mode | stat.S_IXOTH)
            print(f"made {parent} traversable (o+x) for the {_OS_USER} user")


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip()[-400:]
        if log is not None:
            detail += f"\n{log} ends with:\n{tail(log)}"
        raise ServiceUnavailable(f"PostgreSQL {what} failed: {detail}")


def _runtime_conf(port: int, run: Path) -> str:
    # Absolute: the postmaster resolves a relative directory against its data directory.
    run = run.resolve()
    socket_dir = str(run) if len(f"{run}/.s.PGSQL.{port}") <= _SUN_PATH_MAX else ""
    return f"port = {port}\nunix_socket_directories = '{socket_dir}'\n"


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def _postmaster_pid(data: Path) -> int | None:
    pid = read_int(data / "postmaster.pid")
    return pid if pid is not None and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return state != "Z" and name in ("postgres", "postmaster")


def _ensure_database(port: int) -> None:
    with psycopg.connect(url(port, "postgres"), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def start(state: Path) -> str:
    """Initialise (first time) and start the cluster unless it runs; returns its URL."""
    running = status(state)
    if running is not None:
        return running
    bins = bindir()
    root, data, run, logs = _dirs(state)
    for path in (root, run, logs):
        path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _prepare_root_ownership(root)
    if not (data / "PG_VERSION").is_file():
        shutil.rmtree(data, ignore_errors=True)  # a half-made cluster from an interrupted initdb
        _run(
            [
                str(bins / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_CONF)
    port = free_port(read_int(root / "port"))
    runtime = data / "da_runtime.conf"
    runtime.write_text(_runtime_conf(port, run))
    (root / "port").write_text(f"{port}\n")
    if os.geteuid() == 0:
        owner = data.stat()
        os.chown(runtime, owner.st_uid, owner.st_gid)
    log = logs / "postgres.log"
    # pg_ctl detaches the postmaster into its own session and waits until it accepts connections.
    _run(
        [str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
        "start",
        log,
    )
    _ensure_database(port)
    return url(port)


def status(state: Path) -> str | None:
    """The database URL when the postmaster runs and its port accepts connections."""
    root, data, _, _ = _dirs(state)
    port = read_int(root / "port")
    if port is None or _postmaster_pid(data) is None or not port_open(port):
        return None
    return url(port)


def stop(state: Path) -> bool:
    """Fast shutdown (SIGINT: roll back sessions, checkpoint), then SIGKILL; True if it ran."""
    data = _dirs(state)[1]
    pid = _postmaster_pid(data)
    if pid is None:
        return False
    # SIGTERM would be a "smart" shutdown that waits for every client to disconnect; SIGINT is
    # the fast one. The postmaster's own children exit with it.
    terminate(pid, "postgres", grace_s=30.0, first=signal.SIGINT)
    return True


def purge(state: Path) -> None:
    shutil.rmtree(_dirs(state)[0], ignore_errors=True)
