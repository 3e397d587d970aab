"""The schema registry of the stack, for real: ``da schemas register | check | list``, the
compatibility promised (FULL), a deliberately incompatible schema refused, and the codec's ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from cli.schemas import codec_for, topic_schemas
from common.codec import SCHEMAS_DIR, Codec
from common.schema_registry import (
    COMPATIBILITY,
    RegistryIds,
    RegistryRefused,
    TopicSchema,
    make_client,
)
from common.settings import Settings

pytestmark = pytest.mark.integration
FULFILLMENT = "de/fulfillment"


def da(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def registry_env(schema_registry: str, settings_env: dict[str, str]) -> dict[str, str]:
    return settings_env


def _breaking_copy(tmp_path: Path) -> Path:
    """schemas/ plus a fulfillment v2 with a required field: old records cannot be read by it."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    v2 = json.loads((root / FULFILLMENT / "v1.avsc").read_text())
    v2["fields"].append({"name": "tenant", "type": "string"})  # no default
    (root / FULFILLMENT / "v2.avsc").write_text(json.dumps(v2))
    return root


def test_register_sets_compatibility_and_every_subject(
    registry_env: dict[str, str], settings: Settings
) -> None:
    done = da(registry_env, "schemas", "register")
    assert done.returncode == 0, done.stderr
    codec = Codec()
    with make_client(settings) as client:
        expected = {ts.subject for ts in topic_schemas(settings.namespace)}
        assert expected <= set(client.get_subjects())
        for ts in topic_schemas(settings.namespace):
            assert client.get_compatibility(ts.subject) == COMPATIBILITY
            held = client.get_versions(ts.subject)
            assert len(held) == len(codec.versions(ts.schema)), ts.subject
    # Registering again changes nothing: same ids, no new versions.
    again = da(registry_env, "schemas", "register")
    assert again.returncode == 0 and again.stdout == done.stdout
    listed = da(registry_env, "schemas", "list")
    assert listed.returncode == 0 and "not registered" not in listed.stdout
    checked = da(registry_env, "schemas", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_check_and_register_refuse_an_incompatible_schema(
    registry_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    assert da(registry_env, "schemas", "register").returncode == 0
    breaking = str(_breaking_copy(tmp_path))
    subject = f"{settings.namespace}.org.gooru.da.sink.demux.fulfillment-value"
    checked = da(registry_env, "schemas", "check", "--schemas", breaking)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"{subject}: {FULFILLMENT} v2 INCOMPATIBLE" in checked.stdout
    assert "would break" in checked.stderr
    refused = da(registry_env, "schemas", "register", "--schemas", breaking)
    # Exit 1, as `check`: the work failed (exit-code table in the README).
    assert refused.returncode == 1 and "409" in refused.stderr
    with make_client(settings) as client:
        assert len(client.get_versions(subject)) == 1


def test_a_compatible_new_version_passes_the_check(
    registry_env: dict[str, str], tmp_path: Path
) -> None:
    assert da(registry_env, "schemas", "register").returncode == 0
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    v2 = json.loads((root / FULFILLMENT / "v1.avsc").read_text())
    v2["fields"].append({"name": "tenant", "type": "string", "default": ""})
    (root / FULFILLMENT / "v2.avsc").write_text(json.dumps(v2))
    checked = da(registry_env, "schemas", "check", "--schemas", str(root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{FULFILLMENT} v2 compatible" in checked.stdout


def test_codecs_share_ids_through_the_registry(schema_registry: str, settings: Settings) -> None:
    # A stage writing to subjects nobody registered registers them (with the compatibility).
    writer, reader = codec_for(settings), codec_for(settings)
    assert writer.registry_framing and reader.registry_framing
    record = {
        "name": "fulfillment.welcome",
        "event_id": "e1",
        "fulfillment_id": "f1",
        "event_type": "Event::Welcome",
        "occurred_at": 1_700_000_000_000_000,
        "actor_id": None,
        "attributes": {},
        "lineage": {"root_event_id": "e1", "stages": ["gep", "demux"], "hops": 1},
    }
    with closing(writer), closing(reader), make_client(settings) as client:
        data = writer.encode(FULFILLMENT, record)
        schema_id = int.from_bytes(data[1:5], "big")
        subject = f"{settings.namespace}.org.gooru.da.sink.demux.fulfillment-value"
        assert client.get_latest_version(subject).schema_id == schema_id
        assert client.get_compatibility(subject) == COMPATIBILITY
        assert reader.decode(FULFILLMENT, data)["event_id"] == "e1"


def test_a_wrong_registry_url_is_a_clear_error(settings_env: dict[str, str]) -> None:
    env = {**settings_env, "DA_SCHEMA_REGISTRY_URL": "http://127.0.0.1:9/apis/ccompat/v7"}
    done = da(env, "schemas", "list")
    assert done.returncode == 3  # a service unreachable (exit-code table in the README)
    assert "schema registry unreachable" in done.stderr and "Traceback" not in done.stderr


def test_a_schema_the_registry_refuses_is_final_not_transient(
    schema_registry: str, settings: Settings
) -> None:
    topic = f"{settings.namespace}.refused"
    ids = RegistryIds(make_client(settings), [TopicSchema(topic, "canonical")])
    with closing(ids), pytest.raises(RegistryRefused):
        ids.writer_id("canonical", ['{"type": "record", "name": "X", "fields": "nonsense"}'])
