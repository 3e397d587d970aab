"""The HTTP workloads of the rendered manifests: the collector and the web console, stateless,
so each a Deployment behind a Service, with a budget."""

from __future__ import annotations

import math

from cli.k8s_objects import (
    Manifest,
    Target,
    container,
    meta,
    pdb,
    pod_spec,
    probe,
    selector,
    service,
    workload_name,
)
from common.stages import Stage

WEB = "da-web"
# In the cluster the console has a pod of its own: the port the collector uses suits it too.
WEB_PORT = 8080


def _deployment(
    target: Target, name: str, stage: Stage | None, replicas: int, pod: Manifest
) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(target, name, stage),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(name)},
            "template": {"metadata": {"labels": meta(target, name, stage)["labels"]}, "spec": pod},
        },
    }


def collector_manifests(target: Target, stage: Stage) -> list[Manifest]:
    """The collector, behind a Service on its HTTP port."""
    name = workload_name(stage)
    env: list[Manifest] = [{"name": "DA_COLLECTOR_PORT", "value": str(stage.metrics_port)}]
    run = container(target, ["collector", "run"], stage.metrics_port, env)
    # A post waits at most DA_COLLECTOR_ACK_TIMEOUT_S for the broker.
    grace = math.ceil(target.settings.collector_ack_timeout_s) + 15
    deployment = _deployment(target, name, stage, 2, pod_spec(target, [run], grace))
    return [
        deployment,
        service(target, name, stage, stage.metrics_port, headless=False),
        pdb(target, name, stage),
    ]


def web_manifests(target: Target) -> list[Manifest]:
    """The read-only web console (`da web`) on WEB_PORT, behind a Service. It reads what the
    stages wrote and holds no state: one replica is enough, a second only serves more viewers."""
    env: list[Manifest] = [{"name": "DA_WEB_PORT", "value": str(WEB_PORT)}]
    run = container(target, ["web"], WEB_PORT, env)
    # Its one health route says the process answers, for readiness and liveness alike.
    run["readinessProbe"] = probe("/healthz", WEB_PORT, failures=3)
    # Server-sent event streams end at once on SIGTERM; browsers reconnect to the next pod.
    deployment = _deployment(target, WEB, None, 1, pod_spec(target, [run], 15))
    return [
        deployment,
        service(target, WEB, None, WEB_PORT, headless=False),
        pdb(target, WEB, None),
    ]
