"""Kubernetes manifests read off the stage registry, so they cannot drift from the code.

Per consuming stage (GEP, demux, each DEP): a headless Service, a StatefulSet running
``da run <stage>``, a PodDisruptionBudget and a KEDA ``ScaledObject`` scaling it on the consumer
lag of its group over its input topics. The collector and the web console: a Deployment, its
Service and a budget each (``cli.k8s_http``). Once per install: the ConfigMap every pod reads its
settings from, a Job that creates the topics, migrates the databases and (with a schema registry)
registers the schemas, and, for a secured Kafka, the KEDA ``TriggerAuthentication`` the
autoscalers log in with (``cli.k8s_auth``).

Database URLs are read from a Secret the manifests name but never hold (``DATABASE_SECRET``);
librdkafka secrets (``DA_KAFKA_SASL_PASSWORD``, ...) from an optional one (``KAFKA_SECRET``).
"""

from __future__ import annotations

from cli.k8s_auth import KAFKA_SECRET, TRIGGER_AUTH, trigger_authentication, trigger_metadata
from cli.k8s_http import collector_manifests, web_manifests
from cli.k8s_objects import (
    CONFIG_MAP,
    DATABASE_SECRET,
    Manifest,
    Target,
    config_map,
    container,
    grace_seconds,
    meta,
    pdb,
    pod_spec,
    selector,
    service,
    workload_name,
)
from common.stages import STAGES, Stage
from common.topics import Topics

__all__ = [
    "DATABASE_SECRET",
    "KAFKA_SECRET",
    "Manifest",
    "Target",
    "grace_seconds",
    "render",
    "workload_name",
]


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
    run = container(target, ["run", stage.short_name], stage.metrics_port, env)
    pod = {
        "metadata": {"labels": meta(target, name, stage)["labels"]},
        "spec": pod_spec(target, [run], grace_seconds(s)),
    }
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(target, name, stage),
        "spec": {
            # No `replicas`: KEDA owns the count, and a re-apply must not reset it.
            "serviceName": name,
            # Stable names without ordered start-up: a scale-out adds its pods at once.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector(name)},
            "template": pod,
        },
    }
    return [
        service(target, name, stage, stage.metrics_port, headless=True),
        stateful_set,
        pdb(target, name, stage),
        _scaled_object(target, name, stage),
    ]


def _scaled_object(target: Target, name: str, stage: Stage) -> Manifest:
    s = target.settings
    secured = trigger_metadata(s)
    triggers = []
    for topic in stage.input_topics(Topics(s.namespace)):
        trigger: Manifest = {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": s.kafka_bootstrap_servers,
                "consumerGroup": stage.group(s),
                "topic": topic,
                # A replica per poll's worth of lag, up to one per partition.
                "lagThreshold": str(s.batch_size),
                **secured,
            },
        }
        if secured:
            trigger["authenticationRef"] = {"name": TRIGGER_AUTH}
        triggers.append(trigger)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(target, name, stage),
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


def setup_job(target: Target) -> Manifest:
    """Topics, tables and schemas, each step idempotent: run before the stages, on every upgrade."""
    steps = [["topics", "ensure"], ["db", "migrate"]]
    if target.settings.schema_registry_url:
        steps.append(["schemas", "register"])
    containers = [container(target, args) for args in steps]
    spec = pod_spec(target, containers[-1:])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(target, "da-setup"),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    # In order: each step after the one before it succeeded.
                    "initContainers": containers[:-1],
                    **spec,
                }
            },
        },
    }


def render(target: Target) -> list[Manifest]:
    """Every object, in the order `kubectl apply` should see them."""
    out = [config_map(target)]
    auth = trigger_authentication(target.settings, meta(target, TRIGGER_AUTH), CONFIG_MAP)
    if auth is not None:
        out.append(auth)  # before the ScaledObjects that name it
    out.append(setup_job(target))
    for stage in STAGES:
        if stage.consumes:
            out += stage_manifests(target, stage)
        else:
            out += collector_manifests(target, stage)
    return out + web_manifests(target)
