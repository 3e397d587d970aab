"""The building blocks of every rendered Kubernetes object: names, labels, the settings every pod
reads (a ConfigMap, and Secrets the manifests name but never hold), containers, probes, budgets
and Services."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cli.k8s_auth import KAFKA_SECRET, cluster_kafka_properties, tls_mount, tls_volume
from common.settings import Settings
from common.stages import Stage

Manifest = dict[str, Any]

CONFIG_MAP = "da-config"
# Key `url`: the DA_DATABASE_URL of every pod; key `<dep name>`: a DEP's own database, for each
# DA_DEP_<NAME>_DATABASE_URL set when rendering.
DATABASE_SECRET = "da-database"
CONTAINER = "da"
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    # No CPU limit: throttling a stage mid-transaction only stretches the transaction.
    "limits": {"memory": "512Mi"},
}


@dataclass(frozen=True)
class Target:
    """Where the manifests go: the cluster's namespace and image, and the pipeline's settings."""

    settings: Settings
    namespace: str = "da"
    image: str = "da-pipeline:latest"


def workload_name(stage: Stage) -> str:
    """``da-gep``, ``da-demux``, ``da-<dep name>``: a DNS label, as pod and Service names need."""
    return "da-" + stage.short_name.replace("_", "-").replace(".", "-")


def grace_seconds(settings: Settings) -> int:
    """Longer than a batch's drain. On SIGTERM the loop finishes the batch in hand: its outputs
    are flushed, then its offsets committed (to Kafka's transaction or PostgreSQL), each call
    bounded by DA_IO_TIMEOUT_S; a third bound covers the handler's own database work, and a
    margin the exit itself. Killed sooner, the batch is aborted and done again by the next owner:
    correct, but wasted work on every rolling update."""
    return math.ceil(3 * settings.io_timeout_s) + 15


def meta(target: Target, name: str, stage: Stage | None = None) -> Manifest:
    labels = {"app.kubernetes.io/part-of": "da-pipeline", "app.kubernetes.io/name": name}
    if stage is not None:
        labels["da-pipeline/stage"] = stage.name.replace(".", "-")
    return {"name": name, "namespace": target.namespace, "labels": labels}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def config_map(target: Target) -> Manifest:
    s = target.settings
    data = {
        "DA_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "DA_PARTITIONS": str(s.partitions),
        "DA_REPLICATION_FACTOR": str(s.replication_factor),
        "DA_IO_TIMEOUT_S": str(s.io_timeout_s),
        "DA_BATCH_SIZE": str(s.batch_size),
        # Probes come from the kubelet, not from inside the pod.
        "DA_METRICS_HOST": "0.0.0.0",
        "DA_COLLECTOR_HOST": "0.0.0.0",
        "DA_WEB_HOST": "0.0.0.0",
        "DA_LOG_LEVEL": s.log_level,
        # The Kafka client properties that are no secret (security protocol, SASL mechanism,
        # user name, where the mounted certificates are); the secret ones stay in KAFKA_SECRET.
        **cluster_kafka_properties(s),
    }
    if s.namespace:
        data["DA_NAMESPACE"] = s.namespace
    if s.schema_registry_url:
        data["DA_SCHEMA_REGISTRY_URL"] = s.schema_registry_url
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(target, CONFIG_MAP),
        "data": data,
    }


def dep_secret_key(variable_name: str) -> str:
    """The key in DATABASE_SECRET of a DEP's own database URL: the DEP's name."""
    return variable_name.lower().replace("_", "-")


def _database_env(settings: Settings) -> list[Manifest]:
    env: list[Manifest] = [
        {
            "name": "DA_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}},
        }
    ]
    # Every pod that reads a DEP's tables (the DEP, the setup Job's migrations, the collector's
    # query API, the console) must find them where the DEP keeps them.
    for name, _ in settings.dep_database_urls:
        ref = {"name": DATABASE_SECRET, "key": dep_secret_key(name)}
        env.append({"name": f"DA_DEP_{name}_DATABASE_URL", "valueFrom": {"secretKeyRef": ref}})
    return env


def container(
    target: Target, args: list[str], port: int | None = None, extra_env: Iterable[Manifest] = ()
) -> Manifest:
    made: Manifest = {
        "name": CONTAINER if port is not None else "-".join(args),
        "image": target.image,
        "args": args,  # the image's entrypoint is `da`
        "envFrom": [
            {"configMapRef": {"name": CONFIG_MAP}},
            {"secretRef": {"name": KAFKA_SECRET, "optional": True}},
        ],
        "env": [*_database_env(target.settings), *extra_env],
        "resources": RESOURCES,
    }
    if (mount := tls_mount(target.settings)) is not None:
        made["volumeMounts"] = [mount]
    if port is not None:
        made |= {
            "ports": [{"name": "http", "containerPort": port}],
            # Ready: its services answer; alive: its loop turns. A stage that stays unhealthy
            # exits by itself too (DA_UNHEALTHY_EXIT_S).
            "readinessProbe": probe("/readyz", port, failures=3),
            "livenessProbe": probe("/healthz", port, failures=6),
        }
    return made


def pod_spec(target: Target, containers: list[Manifest], grace_s: int | None = None) -> Manifest:
    spec: Manifest = {"containers": containers}
    if grace_s is not None:
        spec["terminationGracePeriodSeconds"] = grace_s
    if (volume := tls_volume(target.settings)) is not None:
        spec["volumes"] = [volume]
    return spec


def probe(path: str, port: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def pdb(target: Target, name: str, stage: Stage | None) -> Manifest:
    # One instance at a time through a drain: its partitions move to the others in one rebalance.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(target, name, stage),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}},
    }


def service(
    target: Target, name: str, stage: Stage | None, port: int, *, headless: bool
) -> Manifest:
    spec: Manifest = {
        "selector": selector(name),
        "ports": [{"name": "http", "port": port, "targetPort": "http"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(target, name, stage)} | {
        "spec": spec
    }
