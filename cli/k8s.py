"""Kubernetes manifests read off the stage registry, so they cannot drift from the code.

Per consuming stage (GEP, demux, each DEP): a headless Service, a StatefulSet running
``da run <stage>``, a PodDisruptionBudget and a KEDA ``ScaledObject`` scaling it on the consumer
lag of its group over its input topics. The collector: a Deployment, its Service and a budget.
Once per install: the ConfigMap every pod reads its settings from and a Job that creates the
topics, migrates the database and (with a schema registry) registers the schemas.

The database URL is read from a Secret the manifests name but never hold (``DATABASE_SECRET``);
librdkafka secrets (``DA_KAFKA_SASL_PASSWORD``, ...) from an optional one (``KAFKA_SECRET``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.settings import Settings
from common.stages import STAGES, Stage
from common.topics import Topics

Manifest = dict[str, Any]

CONFIG_MAP = "da-config"
DATABASE_SECRET = "da-database"  # key `url`: the DA_DATABASE_URL of every pod
KAFKA_SECRET = "da-kafka"  # optional: DA_KAFKA_* properties that are secrets
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


def _meta(target: Target, name: str, stage: Stage | None = None) -> Manifest:
    labels = {"app.kubernetes.io/part-of": "da-pipeline", "app.kubernetes.io/name": name}
    if stage is not None:
        labels["da-pipeline/stage"] = stage.name.replace(".", "-")
    return {"name": name, "namespace": target.namespace, "labels": labels}


def _selector(name: str) -> dict[str, str]:
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
        "DA_LOG_LEVEL": s.log_level,
    }
    if s.namespace:
        data["DA_NAMESPACE"] = s.namespace
    if s.schema_registry_url:
        data["DA_SCHEMA_REGISTRY_URL"] = s.schema_registry_url
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(target, CONFIG_MAP),
        "data": data,
    }


def _container(
    target: Target, args: list[str], port: int | None = None, extra_env: Iterable[Manifest] = ()
) -> Manifest:
    env: list[Manifest] = [
        {
            "name": "DA_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}},
        },
        *extra_env,
    ]
    container: Manifest = {
        "name": CONTAINER if port is not None else "-".join(args),
        "image": target.image,
        "args": args,  # the image's entrypoint is `da`
        "envFrom": [
            {"configMapRef": {"name": CONFIG_MAP}},
            {"secretRef": {"name": KAFKA_SECRET, "optional": True}},
        ],
        "env": env,
        "resources": RESOURCES,
    }
    if port is not None:
        container |= {
            "ports": [{"name": "http", "containerPort": port}],
            # Ready: its services answer; alive: its loop turns. A stage that stays unhealthy
            # exits by itself too (DA_UNHEALTHY_EXIT_S).
            "readinessProbe": _probe("/readyz", port, failures=3),
            "livenessProbe": _probe("/healthz", port, failures=6),
        }
    return container


def _probe(path: str, port: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _pdb(target: Target, name: str, stage: Stage) -> Manifest:
    # One instance at a time through a drain: its partitions move to the others in one rebalance.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(target, name, stage),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}},
    }


def _service(target: Target, name: str, stage: Stage, headless: bool) -> Manifest:
    spec: Manifest = {
        "selector": _selector(name),
        "ports": [{"name": "http", "port": stage.metrics_port, "targetPort": "http"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(target, name, stage)} | {
        "spec": spec
    }


def stage_manifests(target: Target, stage: Stage) -> list[Manifest]:
    """The headless Service, StatefulSet, budget and ScaledObject of one consuming stage."""
    name = workload_name(stage)
    s = target.settings
    env: list[Manifest] = [
        {"name": "DA_METRICS_PORT", "value": str(stage.metrics_port)},
        # A StatefulSet's pods are named <set>-0, <set>-1, ... and a replaced pod keeps its
        # predecessor's name, so its transactional id (stage + DA_INSTANCE_ID) is the same: its
        # first init_transactions fences the old producer and aborts the transaction it left
        # open, instead of that transaction blocking read_committed readers until it times out.
        {"name": "DA_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    pod = {
        "metadata": {"labels": _meta(target, name, stage)["labels"]},
        "spec": {
            "terminationGracePeriodSeconds": grace_seconds(s),
            "containers": [_container(target, ["run", stage.short_name], stage.metrics_port, env)],
        },
    }
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(target, name, stage),
        "spec": {
            # No `replicas`: KEDA owns the count, and a re-apply must not reset it.
            "serviceName": name,
            # Stable names without ordered start-up: a scale-out adds its pods at once.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": _selector(name)},
            "template": pod,
        },
    }
    group = stage.group(s)
    triggers = [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": s.kafka_bootstrap_servers,
                "consumerGroup": group,
                "topic": topic,
                # A replica per poll's worth of lag, up to one per partition.
                "lagThreshold": str(s.batch_size),
            },
        }
        for topic in stage.input_topics(Topics(s.namespace))
    ]
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(target, name, stage),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name},
            # Never to zero: timers (parking deadlines, lag-0 advance) need a live instance.
            "minReplicaCount": 1,
            # More consumers than partitions would sit idle in the group.
            "maxReplicaCount": s.partitions,
            "pollingInterval": 30,
            "advanced": {
                # Each scale step is a group rebalance: scale in slowly.
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
                }
            },
            "triggers": triggers,
        },
    }
    return [
        _service(target, name, stage, headless=True),
        stateful_set,
        _pdb(target, name, stage),
        scaled,
    ]


def collector_manifests(target: Target, stage: Stage) -> list[Manifest]:
    """The collector: stateless, so a Deployment, behind a Service on its HTTP port."""
    name = workload_name(stage)
    env: list[Manifest] = [{"name": "DA_COLLECTOR_PORT", "value": str(stage.metrics_port)}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(target, name, stage),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": _selector(name)},
            "template": {
                "metadata": {"labels": _meta(target, name, stage)["labels"]},
                "spec": {
                    # A post waits at most DA_COLLECTOR_ACK_TIMEOUT_S for the broker.
                    "terminationGracePeriodSeconds": math.ceil(
                        target.settings.collector_ack_timeout_s
                    )
                    + 15,
                    "containers": [
                        _container(target, ["collector", "run"], stage.metrics_port, env)
                    ],
                },
            },
        },
    }
    return [deployment, _service(target, name, stage, headless=False), _pdb(target, name, stage)]


def setup_job(target: Target) -> Manifest:
    """Topics, tables and schemas, each step idempotent: run before the stages, on every upgrade."""
    steps = [["topics", "ensure"], ["db", "migrate"]]
    if target.settings.schema_registry_url:
        steps.append(["schemas", "register"])
    containers = [_container(target, args) for args in steps]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(target, "da-setup"),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    # In order: each step after the one before it succeeded.
                    "initContainers": containers[:-1],
                    "containers": containers[-1:],
                }
            },
        },
    }


def render(target: Target) -> list[Manifest]:
    """Every object, in the order `kubectl apply` should see them."""
    out = [config_map(target), setup_job(target)]
    for stage in STAGES:
        if stage.consumes:
            out += stage_manifests(target, stage)
        else:
            out += collector_manifests(target, stage)
    return out
