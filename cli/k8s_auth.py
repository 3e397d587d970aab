"""A secured Kafka in the rendered manifests: which client properties the pods read from the
ConfigMap and which from Secrets, the certificates mounted into every pod, and the KEDA
``TriggerAuthentication`` through which the autoscalers log in as the stages do.

Secret values are never rendered: a manifest names the Secret and the key that hold them.
``KAFKA_SECRET`` holds the secret ``DA_KAFKA_*`` properties under their variable names (read
whole into every pod); ``KAFKA_TLS_SECRET`` the certificates as files (``ca.crt``, and for mutual
TLS ``tls.crt`` and ``tls.key``), mounted at ``TLS_DIR``.
"""

from __future__ import annotations

from typing import Any

from common.kafka_properties import is_secret, kafka_variable
from common.settings import Settings, SettingsError

KAFKA_SECRET = "da-kafka"
KAFKA_TLS_SECRET = "da-kafka-tls"
TRIGGER_AUTH = "da-kafka"
TLS_DIR = "/etc/da/kafka-tls"
# librdkafka's certificate files, as the keys of KAFKA_TLS_SECRET (kubernetes.io/tls naming).
_TLS_FILES = {
    "ssl.ca.location": "ca.crt",
    "ssl.certificate.location": "tls.crt",
    "ssl.key.location": "tls.key",
}
# The same files as KEDA's kafka scaler takes them (their contents, from the same Secret).
_KEDA_TLS = {"ssl.ca.location": "ca", "ssl.certificate.location": "cert", "ssl.key.location": "key"}
# KEDA's SASL modes that log in with a user name and a password.
_USER_AND_PASSWORD = ("plaintext", "scram_sha256", "scram_sha512")
# librdkafka's sasl.mechanism as KEDA's kafka scaler names it.
_KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
    "GSSAPI": "gssapi",
}


def _properties(settings: Settings) -> dict[str, str]:
    return dict(settings.kafka_properties)


def _protocol(settings: Settings) -> str:
    return _properties(settings).get("security.protocol", "PLAINTEXT").upper()


def cluster_kafka_properties(settings: Settings) -> dict[str, str]:
    """The ``DA_KAFKA_*`` entries of the ConfigMap: every property that is no secret, with the
    certificate paths where the pods find them (a path on the machine that rendered means
    nothing in a pod)."""
    data = {}
    for prop, value in settings.kafka_properties:
        if is_secret(prop):
            continue
        data[kafka_variable(prop)] = (
            f"{TLS_DIR}/{_TLS_FILES[prop]}" if prop in _TLS_FILES else value
        )
    return data


def _tls_files(settings: Settings) -> list[str]:
    return [p for p in _TLS_FILES if p in _properties(settings)]


def tls_volume(settings: Settings) -> dict[str, Any] | None:
    if not _tls_files(settings):
        return None
    return {"name": "kafka-tls", "secret": {"secretName": KAFKA_TLS_SECRET}}


def tls_mount(settings: Settings) -> dict[str, Any] | None:
    if not _tls_files(settings):
        return None
    return {"name": "kafka-tls", "mountPath": TLS_DIR, "readOnly": True}


def trigger_metadata(settings: Settings) -> dict[str, str]:
    """What a kafka trigger says about the connection itself (no secret in it)."""
    protocol = _protocol(settings)
    found = {}
    if protocol.startswith("SASL_"):
        mechanism = _properties(settings).get("sasl.mechanism", "GSSAPI").upper()
        if mechanism not in _KEDA_SASL:
            raise SettingsError(
                f"DA_KAFKA_SASL_MECHANISM={mechanism}: KEDA's kafka scaler takes "
                f"{', '.join(_KEDA_SASL)}"
            )
        found["sasl"] = _KEDA_SASL[mechanism]
    if protocol in ("SSL", "SASL_SSL"):
        found["tls"] = "enable"
    return found


def trigger_authentication(
    settings: Settings, metadata: dict[str, Any], config_map: str
) -> dict[str, Any] | None:
    """The autoscalers' login to a secured Kafka, from the same ConfigMap (``config_map``) and
    Secrets the stages read; None when the cluster's Kafka needs none."""
    metadata_of_trigger = trigger_metadata(settings)
    if not metadata_of_trigger:
        return None
    props = _properties(settings)
    secrets: list[dict[str, str]] = []
    config: list[dict[str, str]] = []

    def ref(parameter: str, name: str, key: str) -> dict[str, str]:
        return {"parameter": parameter, "name": name, "key": key}

    if metadata_of_trigger.get("sasl") in _USER_AND_PASSWORD:
        # The password is never rendered, so whether it was set when rendering says nothing:
        # it is in KAFKA_SECRET. The user name is in the ConfigMap when it was set, else there.
        user = kafka_variable("sasl.username")
        if "sasl.username" in props:
            config.append(ref("username", config_map, user))
        else:
            secrets.append(ref("username", KAFKA_SECRET, user))
        secrets.append(ref("password", KAFKA_SECRET, kafka_variable("sasl.password")))
    for prop in _tls_files(settings):
        secrets.append(ref(_KEDA_TLS[prop], KAFKA_TLS_SECRET, _TLS_FILES[prop]))
    if "ssl.key.password" in props:
        secrets.append(ref("keyPassword", KAFKA_SECRET, kafka_variable("ssl.key.password")))
    spec: dict[str, Any] = {}
    if secrets:
        spec["secretTargetRef"] = secrets
    if config:
        spec["configMapTargetRef"] = config
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": metadata,
        "spec": spec,
    }
