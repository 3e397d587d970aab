"""``da deploy k8s`` for a secured Kafka and for DEPs on databases of their own, and the web
console's workload: the KEDA TriggerAuthentication and every other object valid offline, secrets
named by Secret and key and never rendered, certificates mounted where the pods look for them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cli.deploy import cluster_settings
from cli.k8s import DATABASE_SECRET, KAFKA_SECRET, Target, render
from cli.k8s_auth import KAFKA_TLS_SECRET, TLS_DIR, TRIGGER_AUTH
from cli.k8s_http import WEB, WEB_PORT
from common.settings import SettingsError
from tests.unit.test_k8s import KEDA_SCHEMA, KUBERNETES, container

ROOT = Path(__file__).resolve().parents[2]
KEDA_AUTH_SCHEMA = ROOT / "deploy" / "k8s" / "keda-triggerauthentication-v2.15.json"
SASL_SSL = {
    "DA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "DA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "DA_KAFKA_SASL_USERNAME": "da-pipeline",
    "DA_KAFKA_SASL_PASSWORD": "hunter2-kafka",
    "DA_KAFKA_SSL_CA_LOCATION": "/home/me/ca.pem",
}
OWN_DB = {"DA_DEP_FULFILLMENT_STATE_DATABASE_URL": "postgresql://fs:hunter2-pg@fs-db/fs"}


def rendered(env: dict[str, str]) -> list[dict[str, Any]]:
    return render(Target(cluster_settings("kafka:9093", env), namespace="pipeline"))


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def _schema(path: Path) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(path.read_text())["openAPIV3Schema"])


def test_every_object_of_a_secured_install_is_valid() -> None:
    manifests = rendered(SASL_SSL | OWN_DB)
    (auth,) = of_kind(manifests, "TriggerAuthentication")
    _schema(KEDA_AUTH_SCHEMA).validate(auth)
    for scaled in of_kind(manifests, "ScaledObject"):
        _schema(KEDA_SCHEMA).validate(scaled)
    for m in manifests:
        if m["kind"] not in ("ScaledObject", "TriggerAuthentication"):
            kubernetes_validate.validate(m, KUBERNETES, strict=True)


def test_the_trigger_authentication_schema_refuses_an_inlined_value() -> None:
    (auth,) = of_kind(rendered(SASL_SSL), "TriggerAuthentication")
    inlined = {**auth, "spec": {"secretTargetRef": [{"parameter": "password", "value": "x"}]}}
    with pytest.raises(jsonschema.ValidationError):
        _schema(KEDA_AUTH_SCHEMA).validate(inlined)


def test_autoscalers_log_in_as_the_stages_do_from_secrets_never_rendered() -> None:
    manifests = rendered(SASL_SSL)
    text = yaml.safe_dump_all(manifests)
    assert "hunter2-kafka" not in text and "/home/me" not in text
    (auth,) = of_kind(manifests, "TriggerAuthentication")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "password": (KAFKA_SECRET, "DA_KAFKA_SASL_PASSWORD"),
        "ca": (KAFKA_TLS_SECRET, "ca.crt"),
    }
    # Rendered without the password (it is a secret; it need not be at hand): the same.
    without = {k: v for k, v in SASL_SSL.items() if k != "DA_KAFKA_SASL_PASSWORD"}
    assert of_kind(rendered(without), "TriggerAuthentication") == [auth]
    (user,) = auth["spec"]["configMapTargetRef"]
    (config,) = of_kind(manifests, "ConfigMap")
    assert config["data"][user["key"]] == "da-pipeline" and user["parameter"] == "username"
    for scaled in of_kind(manifests, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["authenticationRef"] == {"name": TRIGGER_AUTH}
            assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == (
                "scram_sha512",
                "enable",
            )
    # The pods find the CA where the ConfigMap says, mounted from the same Secret KEDA reads.
    assert config["data"]["DA_KAFKA_SSL_CA_LOCATION"] == f"{TLS_DIR}/ca.crt"
    assert "DA_KAFKA_SASL_PASSWORD" not in config["data"]
    for kind in ("StatefulSet", "Deployment"):
        for workload in of_kind(manifests, kind):
            pod = workload["spec"]["template"]["spec"]
            assert pod["volumes"] == [
                {"name": "kafka-tls", "secret": {"secretName": KAFKA_TLS_SECRET}}
            ]
            assert container(workload)["volumeMounts"][0]["mountPath"] == TLS_DIR


def test_sasl_without_tls_and_a_mechanism_keda_cannot_use() -> None:
    plain = {"DA_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DA_KAFKA_SASL_MECHANISM": "PLAIN"}
    manifests = rendered(plain)
    (scaled, *_) = of_kind(manifests, "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["sasl"] == "plaintext"
    assert "tls" not in scaled["spec"]["triggers"][0]["metadata"]
    (auth,) = of_kind(manifests, "TriggerAuthentication")
    # No user name when rendering: KEDA reads it, like the password, from the Kafka Secret.
    assert {(r["parameter"], r["name"]) for r in auth["spec"]["secretTargetRef"]} == {
        ("username", KAFKA_SECRET),
        ("password", KAFKA_SECRET),
    }
    assert all("volumes" not in w["spec"]["template"]["spec"] for w in of_kind(manifests, "Job"))
    with pytest.raises(SettingsError, match="DA_KAFKA_SASL_MECHANISM=KERBEROS"):
        rendered({**plain, "DA_KAFKA_SASL_MECHANISM": "KERBEROS"})


def test_a_deps_own_database_is_read_from_the_database_secret_by_every_pod() -> None:
    manifests = rendered(OWN_DB)
    assert "hunter2-pg" not in yaml.safe_dump_all(manifests)
    pods = [
        c
        for m in manifests
        if m["kind"] in ("StatefulSet", "Deployment", "Job")
        for c in m["spec"]["template"]["spec"].get("initContainers", [])
        + m["spec"]["template"]["spec"]["containers"]
    ]
    for c in pods:
        env = {e["name"]: e for e in c["env"]}
        ref = env["DA_DEP_FULFILLMENT_STATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": DATABASE_SECRET, "key": "fulfillment-state"}
    plain = yaml.safe_dump_all(rendered({}))
    assert not re.search(r"DA_DEP_\w+_DATABASE_URL", plain)
    with pytest.raises(SettingsError, match="names no DEP"):
        rendered({"DA_DEP_NO_SUCH_DEP_DATABASE_URL": "postgresql://x@y/z"})


def test_the_web_console_is_a_deployment_behind_a_service_on_its_port() -> None:
    manifests = rendered({})
    (deployment,) = [m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"] == WEB]
    c = container(deployment)
    assert c["args"] == ["web"]
    env = {e["name"]: e for e in c["env"]}
    assert env["DA_WEB_PORT"]["value"] == str(WEB_PORT) == "8080"
    assert c["ports"] == [{"name": "http", "containerPort": WEB_PORT}]
    assert c["readinessProbe"]["httpGet"] == c["livenessProbe"]["httpGet"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": WEB_PORT}
    (service,) = [m for m in of_kind(manifests, "Service") if m["metadata"]["name"] == WEB]
    assert service["spec"]["ports"][0]["port"] == WEB_PORT and "clusterIP" not in service["spec"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (config,) = of_kind(manifests, "ConfigMap")
    assert config["data"]["DA_WEB_HOST"] == "0.0.0.0"
