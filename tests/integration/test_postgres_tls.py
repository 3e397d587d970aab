"""PostgreSQL over TLS is libpq's: ``sslmode`` (and ``sslrootcert``) in DA_DATABASE_URL. A private
cluster serves a certificate a test-made authority signed; the CLI verifies it, and refuses a
server its authority did not sign in one line, exit code 3."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cli.stack import postgres
from tests.e2e.pipeline import REPO, da
from tests.tls import Certificates, make_certificates


def _serve_tls(url: str, data: Path, certs: Certificates) -> None:
    for source, name in ((certs.cert, "server.crt"), (certs.key, "server.key")):
        target = data / name
        shutil.copyfile(source, target)
        target.chmod(0o600)  # the server refuses a key others can read
        owner = data.stat()
        if os.geteuid() == 0:
            os.chown(target, owner.st_uid, owner.st_gid)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Certificates]]:
    root = tmp_path_factory.mktemp("pgtls")
    certs = make_certificates(root / "certs")
    state = root / "state"
    url = postgres.start(state)
    try:
        _serve_tls(url, state / "pg" / "data", certs)
        yield url, certs
    finally:
        postgres.stop(state)


def test_verify_full_connects_over_tls(tls_cluster: tuple[str, Certificates]) -> None:
    url, certs = tls_cluster
    secured = f"{url}?sslmode=verify-full&sslrootcert={certs.ca}"
    with psycopg.connect(secured) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)


def test_the_cli_migrates_over_tls_and_refuses_an_unknown_server(
    tls_cluster: tuple[str, Certificates], settings_env: dict[str, str], tmp_path: Path
) -> None:
    url, certs = tls_cluster
    env = {**settings_env, "DA_DATABASE_URL": f"{url}?sslmode=verify-full&sslrootcert={certs.ca}"}
    ok = subprocess.run(da("db", "migrate"), env=env, cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr

    stranger = make_certificates(tmp_path / "other")  # an authority that signed nothing here
    env["DA_DATABASE_URL"] = f"{url}?sslmode=verify-full&sslrootcert={stranger.ca}"
    bad = subprocess.run(da("db", "migrate"), env=env, cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 3, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "certificate verify failed" in bad.stderr
