"""Every command fails the documented way: one line on stderr naming the setting or input at
fault, and the exit code of the table (2 usage or configuration, 3 a service unavailable);
never a traceback unless DA_LOG_LEVEL=DEBUG asks for it.

The unreachable services are addresses nothing listens on; only the missing database needs a
real server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.pipeline import REPO, da
from tests.services import Services

NOWHERE = {
    "DA_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "DA_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/da",
    "DA_IO_TIMEOUT_S": "1",
}
SAMPLE = "data/sample/fulfillments.csv"
KAFKA_DOWN = "DA_KAFKA_BOOTSTRAP_SERVERS"
PG_DOWN = "DA_DATABASE_URL"

# (command, environment over NOWHERE, exit code, what the line must name)
CASES: list[tuple[str, dict[str, str], int, str]] = [
    ("topics ensure", {}, 3, KAFKA_DOWN),
    ("gep run", {}, 3, KAFKA_DOWN),
    ("demux run", {}, 3, KAFKA_DOWN),
    ("dep run fulfillment-state", {}, 3, PG_DOWN),
    (f"emit {SAMPLE}", {}, 3, KAFKA_DOWN),
    ("dlq list", {}, 3, KAFKA_DOWN),
    ("dlq show gep", {}, 3, KAFKA_DOWN),
    ("dlq replay gep --dry-run", {}, 3, KAFKA_DOWN),
    ("replay fulfillment-state --rebuild --yes", {}, 3, KAFKA_DOWN),
    ("db migrate", {}, 3, PG_DOWN),
    ("fulfillments", {}, 3, PG_DOWN),
    ("learning", {}, 3, PG_DOWN),
    ("parked", {}, 3, PG_DOWN),
    ("apps list", {}, 3, PG_DOWN),
    ("apps add shop", {}, 3, PG_DOWN),
    ("apps revoke shop", {}, 3, PG_DOWN),
    ("collector run", {}, 3, KAFKA_DOWN),
    ("workflow list", {}, 3, PG_DOWN),
    ("workflow board", {}, 3, PG_DOWN),
    ("workflow get uid://A003/X1/X1a", {}, 3, PG_DOWN),
    ("workflow set-state uid://A003/X1/X1a Reviewing", {}, 3, KAFKA_DOWN),
    ("stack status", {"DA_STATE_DIR": "{tmp}"}, 3, "da stack up"),
    ("dlq show nosuchstage", {}, 2, "nosuchstage"),
    ("dep run nosuch", {}, 2, "nosuch"),
    ("replay nosuch --rebuild", {}, 2, "nosuch"),
    ("emit /nonexistent.csv", {}, 2, "/nonexistent.csv"),
    ("sample fulfillments --to /nonexistent/x.csv", {}, 2, "/nonexistent/x.csv"),
    ("fulfillments --watch soon", {}, 2, "--watch"),
    ("no-such-command", {}, 2, "no-such-command"),
    ("topics ensure", {"DA_LOG_LEVEL": "verbose"}, 2, "DA_LOG_LEVEL"),
    ("gep run", {"DA_PARTITIONS": "many"}, 2, "DA_PARTITIONS"),
    ("fulfillments", {"DA_DATABASE_URL": "not a url"}, 2, "DA_DATABASE_URL"),
    ("db migrate", {"DA_DATABASE_URL": "postgresql://u@127.0.0.1:port/da"}, 2, "DA_DATABASE_URL"),
    (f"emit {SAMPLE}", {"DA_KAFKA_ENABLE_AUTO_COMMIT": "true"}, 2, "DA_KAFKA_ENABLE_AUTO_COMMIT"),
    ("gep run", {"DA_KAFKA_SASL_MECHANISMZ": "PLAIN"}, 2, "DA_KAFKA_SASL_MECHANISMZ"),
]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DA_")}
    return subprocess.run(
        da(*args), env={**base, **env}, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("command", "env", "code", "named"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_a_failure_is_one_line_and_the_documented_code(
    command: str, env: dict[str, str], code: int, named: str, tmp_path: Path
) -> None:
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in {**NOWHERE, **env}.items()}
    proc = _run(command.split(), env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    # `stack status` reports each service on stdout and says what to do in its one line.
    assert len(lines) == 1, proc.stderr
    assert named in lines[0]


def test_debug_adds_the_traceback() -> None:
    proc = _run(["db", "migrate"], {**NOWHERE, "DA_LOG_LEVEL": "DEBUG"})
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("da: PostgreSQL unreachable")


def test_a_missing_database_is_told_apart_from_an_unreachable_server(
    services: Services,
) -> None:
    url = services.database_url.rsplit("/", 1)[0] + "/no_such_database"
    proc = _run(["db", "migrate"], {**NOWHERE, "DA_DATABASE_URL": url})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'da: DA_DATABASE_URL names a missing database: database "no_such_database" does not '
        "exist; create it (`createdb`) or fix the URL"
    ]
