"""A secured cluster: the local broker with a SASL_SSL (SCRAM-SHA-512) listener whose certificate
a test-made authority signed. The pipeline runs end to end through it as processes, configured
only by ``DA_KAFKA_*`` variables; a wrong password is one line and exit code 3; no secret shows.
"""

from __future__ import annotations

import csv
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from cli.sample.fulfillments import COLUMNS, generate
from cli.stack import kafka
from cli.stack.procs import free_port
from common.settings import Settings
from tests.e2e.pipeline import REPO, Stages, da, prepare, wait_until_equal
from tests.e2e.test_fulfillment_pipeline import check_tables
from tests.oracle import expected_tables
from tests.tls import MECHANISM, add_scram_user, make_certificates, sasl_ssl_listener

USER = "da-stage"


@dataclass(frozen=True)
class Secured:
    bootstrap: str  # the SASL_SSL listener
    ca: Path
    password: str

    def env(self, password: str | None = None) -> dict[str, str]:
        return {
            "DA_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DA_KAFKA_SASL_MECHANISMS": MECHANISM,
            "DA_KAFKA_SASL_USERNAME": USER,
            "DA_KAFKA_SASL_PASSWORD": self.password if password is None else password,
            "DA_KAFKA_SSL_CA_LOCATION": str(self.ca),
        }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    certs = make_certificates(root / "certs")
    port = free_port()
    state = root / "state"
    plaintext = kafka.start(state, extra=sasl_ssl_listener(certs, port))
    try:
        password = secrets.token_urlsafe(16)
        add_scram_user(plaintext, USER, password)
        yield Secured(f"127.0.0.1:{port}", certs.ca, password)
    finally:
        kafka.stop(state)


def _write_sample(path: Path) -> list[dict[str, str]]:
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=5, count=150)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([r[c] for c in COLUMNS] for r in rows)
    return rows


def test_the_pipeline_runs_over_sasl_ssl(
    secured: Secured, settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, **secured.env(), "DA_LOG_LEVEL": "INFO"}
    prepare(env)
    rows = _write_sample(tmp_path / "events.csv")
    want = expected_tables(rows)
    stages = Stages(
        env,
        tmp_path,
        {
            "gep": ["gep", "run"],
            "demux": ["demux", "run"],
            "dep": ["dep", "run", "fulfillment-state"],
        },
    )
    for instance in ("gep-1", "demux-1", "dep-1"):
        stages.start(instance)
    try:
        emit = subprocess.run(
            da("emit", str(tmp_path / "events.csv")),
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert emit.returncode == 0, emit.stderr
        assert wait_until_equal(lambda: check_tables(settings, want)) == [], stages.tails()
        status = subprocess.run(
            da("stack", "status"), env=env, cwd=REPO, capture_output=True, text=True, check=False
        )
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, stages.tails()
    assert "sasl.password=***" in status.stdout, status.stdout
    assert "security.protocol=SASL_SSL" in status.stdout
    shown = status.stdout + status.stderr + emit.stderr + "".join(stages.tails().values())
    assert secured.password not in shown


@pytest.mark.parametrize(
    "command", [["topics", "ensure"], ["gep", "run"], ["emit", "data/sample/fulfillments.csv"]]
)
def test_a_wrong_password_is_one_line_and_exit_3(
    secured: Secured, settings_env: dict[str, str], command: list[str]
) -> None:
    wrong = "not-" + secured.password
    env = {**settings_env, **secured.env(password=wrong)}
    proc = subprocess.run(
        da(*command), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "refused the credentials" in lines[0]
    assert "DA_KAFKA_SASL_PASSWORD" in lines[0]
    assert wrong not in proc.stderr + proc.stdout
