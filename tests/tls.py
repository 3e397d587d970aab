"""A self-signed certificate authority and a server certificate for 127.0.0.1, made with the
``openssl`` command, and the SASL_SSL (SCRAM) listener the local broker serves them on: what
the tests of a secured cluster (Kafka over SASL_SSL, PostgreSQL over TLS) need."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from cli.stack.kafka import Listener

MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the authority's certificate: what a client trusts
    key: Path  # the server's private key (PEM, unencrypted)
    cert: Path  # the server's certificate, signed by the authority, for 127.0.0.1 / localhost
    keystore: Path  # key and certificate chain as PKCS12, for the broker
    keystore_password: str


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise RuntimeError("`openssl` not found on PATH; install the openssl package")
    proc = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()[-400:]}")


def make_certificates(where: Path) -> Certificates:
    where.mkdir(parents=True, exist_ok=True)
    days = ("-days", "2")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", *days, "-subj", "/CN=da-pipeline test CA", cwd=where)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=where)  # fmt: skip
    # Clients check the host name against the subject alternative names, not the CN.
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", *days, "-extfile", "san.ext",
             cwd=where)  # fmt: skip
    password = secrets.token_hex(12)
    _openssl("pkcs12", "-export", "-inkey", "server.key", "-in", "server.pem", "-certfile",
             "ca.pem", "-out", "server.p12", "-passout", f"pass:{password}",
             cwd=where)  # fmt: skip
    return Certificates(
        where / "ca.pem", where / "server.key", where / "server.pem", where / "server.p12", password
    )


def sasl_ssl_listener(certs: Certificates, port: int) -> Listener:
    """A SASL_SSL listener that authenticates with SCRAM and serves ``certs``."""
    prefix = "listener.name.sasl_ssl."
    return Listener(
        "SASL_SSL",
        port,
        {
            "sasl.enabled.mechanisms": MECHANISM,
            f"{prefix}{MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}ssl.keystore.type": "PKCS12",
            f"{prefix}ssl.keystore.location": str(certs.keystore),
            f"{prefix}ssl.keystore.password": certs.keystore_password,
        },
    )


def add_scram_user(plaintext_bootstrap: str, user: str, password: str) -> None:
    """Create (or reset) a SCRAM user, through the broker's plaintext listener."""
    admin = AdminClient({"bootstrap.servers": plaintext_bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    futures: dict[str, Future[None]] = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, info, password.encode())]
    )
    for future in futures.values():
        future.result(timeout=30)
