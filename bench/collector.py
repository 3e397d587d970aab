"""``python -m bench.collector [--seconds S] [--batch B ...] [--record docs/benchmarks.md]``

Load run of the HTTP collector on loopback: a fresh namespace, one ``da collector run`` process
and ``wrk`` (Debian package ``wrk``) with ``--connections`` keep-alive connections posting a
seed-shaped event batch of B events for S seconds per batch size. Latency is wrk's, per post,
to its 202 (the broker acknowledged every event, acks=all). Bounded in time; only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from psycopg import sql

from bench import proc, report
from cli.stages import all_topics
from collector import apps
from common import db
from common.kafka import ensure_topics, make_admin
from common.settings import Settings

BEGIN = "<!-- bench-collector:begin (written by `python -m bench.collector --record`) -->"
END = "<!-- bench-collector:end -->"
REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Result:
    batch: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    failures: int
    collector_cpu: float  # cores
    rest_cpu: float  # wrk, the broker, PostgreSQL and anything else, in cores

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _body(session: int, batch: int) -> bytes:
    ts = datetime.now(UTC).isoformat()
    return json.dumps(
        [
            {
                "session_id": f"bench-{session}",
                "category": "page interaction",
                "name": "pageview",
                "data": {"host": "www.example.com", "path": f"/p/{i}"},
                "timestamp": ts,
            }
            for i in range(batch)
        ]
    ).encode()


_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
wrk.body = io.open("BODY", "rb"):read("*a")
"""


def _wrk(url: str, key: str, seconds: int, batch: int, connections: int, tmp: Path) -> Result:
    """wrk (C, one thread per core) as the load generator: a Python client costs ~2 ms of CPU
    per request (httpx) and would measure itself, not the collector."""
    body, script = tmp / f"body-{batch}.json", tmp / f"post-{batch}.lua"
    body.write_bytes(_body(0, batch))
    script.write_text(_LUA.replace("KEY", key).replace("BODY", str(body)))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"{url}/v1/events",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    totals = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if totals is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, took = int(totals.group(1)), float(totals.group(2))
    failures_found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failures = int(failures_found.group(1)) if failures_found else 0

    def pct(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not found:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    max_found = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    max_ms = (
        float(max_found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[max_found.group(2)]
        if max_found
        else float("nan")
    )
    return Result(
        batch, (requests - failures) * batch, took, pct("50"), pct("99"), max_ms, failures, 0, 0
    )


def run(
    settings: Settings, seconds: int, batches: list[int], connections: int, tmp: Path
) -> list[Result]:
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, apps.MIGRATIONS)
    with db.connect(settings, autocommit=True) as conn:
        key = apps.add(conn, "bench", ("ingest",), 10_000_000.0)
    port = 18600 + os.getpid() % 1000
    env = {
        **os.environ,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_COLLECTOR_PORT": str(port),
        "DA_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "collector", "run"], env=env, cwd=REPO
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        results = []
        for batch in batches:
            _wrk(url, key, 2, batch, connections, tmp)  # warm up
            cpu_server, usage = proc.cpu_s(server.pid), proc.usage(settings)
            r = _wrk(url, key, seconds, batch, connections, tmp)
            after = proc.usage(settings)
            collector_cpu = (proc.cpu_s(server.pid) - cpu_server) / r.seconds
            # Everything else the machine did meanwhile: wrk, the broker, PostgreSQL, the rest.
            rest = (after.machine - usage.machine) / r.seconds - collector_cpu
            results.append(dataclasses.replace(r, collector_cpu=collector_cpu, rest_cpu=rest))
            print(f"batch {batch}: {results[-1]}", file=sys.stderr)
        return results
    finally:
        server.terminate()
        server.wait(30)


def markdown(
    results: list[Result], machine: list[tuple[str, str]], command: str, conns: int
) -> str:
    rows = [
        f"| {r.batch} | {r.events:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.p50_ms:.1f} | "
        f"{r.p99_ms:.1f} | {r.max_ms:.1f} | {r.failures} | {r.collector_cpu:.0%} | "
        f"{r.rest_cpu:.0%} |"
        for r in results
    ]
    return "\n".join(
        [
            f"## Collector load run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Command: `{command}`; one collector process; wrk (one thread, {conns} keep-alive "
            "connections) on loopback; Kafka and PostgreSQL on the same machine. CPU in cores "
            "(100% = one core busy); `rest` is wrk, the broker, PostgreSQL and the rest together.",
            "",
            "| machine | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in machine),
            "",
            "| events per post | events | s | events/s | p50 ms | p99 ms | max ms | non-202 "
            "| collector CPU | rest CPU |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per batch size (default 10)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args(argv)
    base = Settings.load()
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(base, namespace=f"benchc{tag}", database_schema=f"benchc_{tag}")
    try:
        if shutil.which("wrk") is None:
            parser.error("wrk not found: install it (apt-get install wrk)")
        with tempfile.TemporaryDirectory(prefix="da-bench-") as tmp:
            results = run(settings, args.seconds, args.batch, args.connections, Path(tmp))
    finally:
        with db.connect(settings, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(settings.database_schema)
                )
            )
        admin = make_admin(settings)  # kept referenced until the deletions are done
        for f in admin.delete_topics(all_topics(settings)).values():
            f.result()
    batches = " ".join(map(str, args.batch))
    command = f"python -m bench.collector --seconds {args.seconds} --batch {batches}"
    text = markdown(results, report.machine(base), command, args.connections)
    print(text)
    if args.record:
        old = args.record.read_text()
        start, end = old.find(BEGIN), old.find(END)
        block = f"{BEGIN}\n{text}{END}\n"
        new = (
            old[:start] + block + old[end + len(END) + 1 :]
            if 0 <= start < end
            else old.rstrip("\n") + "\n\n" + block
        )
        args.record.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
