"""``da deploy k8s``: every rendered object is valid for the Kubernetes API and KEDA's CRD, and
says what the stage registry says (groups, topics, ports, one workload per stage).

Offline: the Kubernetes schemas ship with ``kubernetes-validate``; the ScaledObject's schema is
vendored under ``deploy/k8s/``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from cli.deploy import cluster_settings
from cli.k8s import DATABASE_SECRET, Target, render, workload_name
from cli.main import app
from collector.app import create_app
from common.settings import Settings
from common.stages import STAGES, Stage, consuming
from common.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
KEDA_SCHEMA = ROOT / "deploy" / "k8s" / "keda-scaledobject-v2.15.json"
# The oldest minor the manifests promise to work on (policy/v1, batch/v1, autoscaling/v2).
KUBERNETES = "1.30.0"
ENV = {"DA_NAMESPACE": "prod", "DA_PARTITIONS": "12", "DA_IO_TIMEOUT_S": "40"}
SETTINGS = cluster_settings("kafka-0.kafka:9092,kafka-1.kafka:9092", ENV)
SETTINGS_ENV = {"DA_" + f.name.upper() for f in dataclasses.fields(Settings)}


@cache
def manifests() -> list[dict[str, Any]]:
    return render(Target(SETTINGS, namespace="pipeline", image="registry.example/da:1.2"))


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests() if m["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def _ids(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata']['name']}"


@pytest.mark.parametrize(
    "manifest", [m for m in manifests() if m["kind"] != "ScaledObject"], ids=_ids
)
def test_every_object_is_valid_for_the_kubernetes_api(manifest: dict[str, Any]) -> None:
    # strict: a field the API does not know fails, instead of being dropped on apply.
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize("manifest", of_kind("ScaledObject").values(), ids=_ids)
def test_every_scaled_object_is_valid_for_the_keda_crd(manifest: dict[str, Any]) -> None:
    schema = json.loads(KEDA_SCHEMA.read_text())["openAPIV3Schema"]
    jsonschema.Draft202012Validator(schema).validate(manifest)


def test_the_keda_schema_refuses_what_keda_would_not_take() -> None:
    schema = json.loads(KEDA_SCHEMA.read_text())["openAPIV3Schema"]
    good = next(iter(of_kind("ScaledObject").values()))
    spec = good["spec"]
    for bad in (
        {**spec, "maxReplicas": 3},  # a misspelt field
        {**spec, "triggers": [{"type": "kafka", "metadata": {"lagThreshold": 5}}]},  # not a str
        {k: v for k, v in spec.items() if k != "scaleTargetRef"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate({**good, "spec": bad})


def test_every_consuming_stage_has_exactly_one_workload() -> None:
    runs = [
        tuple(container(w)["args"])
        for kind in ("StatefulSet", "Deployment")
        for w in of_kind(kind).values()
    ]
    assert sorted(runs) == sorted(
        [("run", s.short_name) for s in consuming()] + [("collector", "run"), ("web",)]
    )
    assert set(of_kind("StatefulSet")) == {workload_name(s) for s in consuming()}
    assert set(of_kind("ScaledObject")) == set(of_kind("StatefulSet"))
    assert set(of_kind("PodDisruptionBudget")) == {workload_name(s) for s in STAGES} | {"da-web"}


@pytest.mark.parametrize("stage", consuming(), ids=lambda s: s.name)
def test_each_scaled_object_follows_the_stage_group_and_inputs(stage: Stage) -> None:
    scaled = of_kind("ScaledObject")[workload_name(stage)]["spec"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": workload_name(stage),
    }
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {stage.group(SETTINGS)}
    assert stage.group(SETTINGS) == "prod.da." + stage.name  # DA_NAMESPACE reached it
    assert [t["metadata"]["topic"] for t in triggers] == stage.input_topics(Topics("prod"))
    assert {t["metadata"]["bootstrapServers"] for t in triggers} == {
        SETTINGS.kafka_bootstrap_servers
    }
    # Never to zero (timers need a live instance); never more consumers than partitions.
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 12)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_probes_and_port_are_the_registry_metrics_port(stage: Stage) -> None:
    kind = "StatefulSet" if stage.consumes else "Deployment"
    c = container(of_kind(kind)[workload_name(stage)])
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": stage.metrics_port}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": stage.metrics_port}
    assert c["ports"] == [{"name": "http", "containerPort": stage.metrics_port}]
    env = {e["name"]: e for e in c["env"]}
    port_var = "DA_METRICS_PORT" if stage.consumes else "DA_COLLECTOR_PORT"
    assert env[port_var]["value"] == str(stage.metrics_port)
    assert c["image"] == "registry.example/da:1.2"
    assert c["resources"]["requests"] and c["resources"]["limits"]


def test_the_collector_probes_are_routes_it_serves() -> None:
    (collector,) = [s for s in STAGES if not s.consumes]
    c = container(of_kind("Deployment")[workload_name(collector)])
    served = {getattr(r, "path", "") for r in create_app(SETTINGS).routes}
    assert {c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"]} <= served
    service = of_kind("Service")[workload_name(collector)]["spec"]
    assert service["ports"][0]["port"] == collector.metrics_port and "clusterIP" not in service


@pytest.mark.parametrize("name", sorted(of_kind("StatefulSet")))
def test_instance_id_is_the_stable_pod_name(name: str) -> None:
    stateful = of_kind("StatefulSet")[name]
    env = {e["name"]: e for e in container(stateful)["env"]}
    assert env["DA_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # KEDA owns the count; a re-apply that set it would undo a scale-out.
    assert "replicas" not in stateful["spec"]
    assert stateful["spec"]["serviceName"] in of_kind("Service")


@pytest.mark.parametrize("io_timeout", ["5", "40", "300"])
def test_grace_period_outlasts_a_batch_drain(io_timeout: str) -> None:
    settings = cluster_settings("kafka:9092", {"DA_IO_TIMEOUT_S": io_timeout})
    for m in render(Target(settings)):
        if m["kind"] == "StatefulSet":
            grace = m["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            # Flush and commit may each wait DA_IO_TIMEOUT_S before the process can exit.
            assert grace > 2 * float(io_timeout)


def test_settings_come_from_the_config_map_and_the_database_url_from_a_secret() -> None:
    settings = cluster_settings(
        "kafka:9092", {"DA_DATABASE_URL": "postgresql://da:hunter2@db/da", "DA_PARTITIONS": "3"}
    )
    text = yaml.safe_dump_all(render(Target(settings)))
    assert "hunter2" not in text and "postgresql:" not in text
    (config,) = [m for m in render(Target(settings)) if m["kind"] == "ConfigMap"]
    assert config["data"]["DA_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert config["data"]["DA_PARTITIONS"] == "3"
    assert set(config["data"]) <= SETTINGS_ENV
    for m in manifests():
        names = set(re.findall(r"\bDA_[A-Z0-9_]+", yaml.safe_dump(m)))
        assert names <= SETTINGS_ENV, f"{_ids(m)}: not settings: {sorted(names - SETTINGS_ENV)}"
    assert not of_kind("TriggerAuthentication")  # a Kafka without security needs none
    env = {e["name"]: e for e in container(of_kind("StatefulSet")["da-gep"])["env"]}
    assert env["DA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == DATABASE_SECRET


def test_setup_job_ensures_topics_migrates_and_registers_only_with_a_registry() -> None:
    def steps(settings: Settings) -> list[list[str]]:
        (job,) = [m for m in render(Target(settings)) if m["kind"] == "Job"]
        pod = job["spec"]["template"]["spec"]
        return [c["args"] for c in pod.get("initContainers", []) + pod["containers"]]

    assert steps(cluster_settings("k:9092", {})) == [["topics", "ensure"], ["db", "migrate"]]
    with_registry = cluster_settings("k:9092", {"DA_SCHEMA_REGISTRY_URL": "http://reg:8080"})
    assert steps(with_registry) == [
        ["topics", "ensure"],
        ["db", "migrate"],
        ["schemas", "register"],
    ]


def test_the_command_writes_one_file_per_workload(tmp_path: Path) -> None:
    args = ["deploy", "k8s", "--namespace", "pipeline", "--kafka", "k:9092", "--to", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == len({m["metadata"]["name"] for m in manifests()})
    loaded = [d for f in files for d in yaml.safe_load_all(f.read_text())]
    assert sorted(map(_ids, loaded)) == sorted(map(_ids, manifests()))
    assert {d["metadata"]["namespace"] for d in loaded} == {"pipeline"}
    printed = CliRunner().invoke(app, ["deploy", "k8s"])
    assert printed.exit_code == 0 and len(list(yaml.safe_load_all(printed.output))) == len(loaded)
