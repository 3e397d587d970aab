"""``da deploy k8s``: the pipeline's Kubernetes manifests, rendered from the stage registry."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import yaml

from cli.k8s import Manifest, Target, render
from common.settings import Settings
from common.stages import check_dep_databases

deploy_app = typer.Typer(help="Manifests to run the pipeline on a platform.", no_args_is_help=True)

# The cluster's Kafka is not the local stack's: a manifest never takes DA_KAFKA_BOOTSTRAP_SERVERS
# from the environment or the stack file by accident.
_KAFKA = typer.Option(
    "kafka:9092", "--kafka", help="Kafka bootstrap servers as the pods reach them."
)


def cluster_settings(kafka: str, env: dict[str, str] | None = None) -> Settings:
    """The pipeline's settings from the environment (DA_NAMESPACE, DA_PARTITIONS, ...), with the
    cluster's Kafka; the database URL stays in the cluster's Secret, never in a manifest."""
    merged = dict(os.environ if env is None else env)
    merged |= {"DA_KAFKA_BOOTSTRAP_SERVERS": kafka, "DA_DATABASE_URL": "postgresql:///unused"}
    settings = Settings.load(merged)
    check_dep_databases(settings)
    return settings


_NAMESPACE = typer.Option("da", "--namespace", help="Kubernetes namespace of every object.")
_TO = typer.Option(
    None, "--to", metavar="DIR", help="Directory to write one file per workload; default stdout."
)
# `-o/--output DIR` before `-o` meant the output format across the CLI; kept, unlisted.
_OLD_OUTPUT = typer.Option(None, "--output", hidden=True)
_IMAGE = typer.Option("da-pipeline:latest", "--image", help="Image built from deploy/Dockerfile.")


class _Dumper(yaml.SafeDumper):
    # Objects share dicts (resources, probes); anchors and aliases would puzzle a reader.
    def ignore_aliases(self, data: object) -> bool:
        return True


def dump(manifests: list[Manifest]) -> str:
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False)


@deploy_app.command("k8s")
def k8s(
    namespace: str = _NAMESPACE,
    to: Path | None = _TO,
    image: str = _IMAGE,
    kafka: str = _KAFKA,
    output: Path | None = _OLD_OUTPUT,
) -> None:
    """Kubernetes manifests for every stage of the registry: a StatefulSet with a KEDA
    ScaledObject on consumer lag per consuming stage, the collector's and the web console's
    Deployment and Service, and a Job for topics, tables and schemas. Needs the Secret
    `da-database` (key `url`; key `<dep>` for each DA_DEP_<NAME>_DATABASE_URL set); with
    DA_KAFKA_SECURITY_PROTOCOL set, a KEDA TriggerAuthentication reads the Secrets `da-kafka`
    and `da-kafka-tls` (see deploy/README.md)."""
    manifests = render(Target(cluster_settings(kafka), namespace, image))
    out = to or output
    if out is None:
        typer.echo(dump(manifests), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    # One file per workload, numbered in apply order, so `kubectl apply -f DIR` keeps it.
    files: dict[str, list[Manifest]] = {}
    for m in manifests:
        files.setdefault(m["metadata"]["name"], []).append(m)
    for i, (name, objects) in enumerate(files.items()):
        path = out / f"{i:02d}-{name}.yaml"
        path.write_text(dump(objects))
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
