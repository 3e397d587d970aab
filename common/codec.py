"""Avro on the wire, in one of two framings, with the schemas in ``schemas/``.

- Single-object encoding (no registry): ``C3 01`` + the 8-byte little-endian CRC-64-AVRO
  fingerprint of the writer schema + the binary record.
- The registry wire format (a schema registry configured): ``00`` + the writer schema's 4-byte
  big-endian registry id + the binary record: what stock serializers, connectors and consoles
  read.

A codec with a registry writes the registry format and reads both, so a pipeline switches over
without a stop and older records stay readable. The reader finds the writer schema by
fingerprint or id and resolves it to the newest version of that name, so producers and consumers
can be upgraded one at a time. Ids are resolved once per schema and kept: no registry round trip
per record. Schemas are parsed once; fastavro costs twice as much per record when handed a raw
dict.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from common.errors import InvalidEvent

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
REGISTRY_MAGIC = 0
REGISTRY_HEADER_LEN = 5
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # path under schemas/, e.g. "de/fulfillment"
    version: int
    parsed: Any
    header: bytes  # MAGIC + fingerprint
    text: str  # the schema as written in its file: what is registered


class SchemaIds(Protocol):
    """A schema registry as the codec sees it (``common.schema_registry.RegistryIds``)."""

    def writer_id(self, name: str, versions: list[str]) -> int:
        """The id of the last of ``versions`` (texts, oldest first) of schema ``name``."""
        ...

    def schema_text(self, schema_id: int) -> str | None:
        """The schema with this id, or None when the registry has none."""
        ...

    def close(self) -> None:
        """Release the connections to the registry."""
        ...


def _header(raw: Any) -> bytes:
    fp = int(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"), 16)
    return MAGIC + fp.to_bytes(8, "little")


class Codec:
    """Encodes and decodes every schema under one directory; ``registry``: the registry framing."""

    def __init__(self, root: Path = SCHEMAS_DIR, registry: SchemaIds | None = None) -> None:
        self._registry = registry
        self._by_header: dict[bytes, SchemaVersion] = {}
        self._latest: dict[str, SchemaVersion] = {}
        self._by_full_name: dict[str, str] = {}
        self._headers: dict[str, bytes] = {}  # name -> registry header of its newest version
        self._by_id: dict[int, SchemaVersion] = {}
        for path in sorted(root.rglob("v*.avsc")):
            name = path.parent.relative_to(root).as_posix()
            text = path.read_text()
            raw = json.loads(text)
            sv = SchemaVersion(name, int(path.stem[1:]), parse_schema(raw), _header(raw), text)
            self._by_header[sv.header] = sv
            self._by_full_name[sv.parsed["name"]] = name
            if name not in self._latest or sv.version > self._latest[name].version:
                self._latest[name] = sv
        if not self._latest:
            raise FileNotFoundError(f"no Avro schemas (v*.avsc) under {root}")

    def names(self) -> list[str]:
        return sorted(self._latest)

    def latest(self, name: str) -> SchemaVersion:
        return self._latest[name]

    def versions(self, name: str) -> list[SchemaVersion]:
        """Every version of ``name``, oldest first."""
        return sorted((v for v in self._by_header.values() if v.name == name), key=_version)

    @property
    def registry_framing(self) -> bool:
        return self._registry is not None

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()

    def header(self, name: str) -> bytes:
        """The framing a record of ``name`` written now starts with."""
        return self._latest[name].header if self._registry is None else self._registry_header(name)

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        sv = self._latest[name]
        buf = io.BytesIO()
        buf.write(self.header(name))
        schemaless_writer(buf, sv.parsed, record)
        return buf.getvalue()

    def _registry_header(self, name: str) -> bytes:
        header = self._headers.get(name)
        if header is None:
            assert self._registry is not None  # only called when a registry is configured
            texts = [v.text for v in self.versions(name)]
            schema_id = self._registry.writer_id(name, texts)
            header = bytes([REGISTRY_MAGIC]) + schema_id.to_bytes(4, "big")
            self._headers[name] = header
            self._by_id[schema_id] = self._latest[name]
        return header

    def _writer(self, data: bytes) -> tuple[SchemaVersion, int]:
        """The writer schema of a record, and where its body starts."""
        if len(data) >= HEADER_LEN and data[:2] == MAGIC:
            writer = self._by_header.get(data[:HEADER_LEN])
            if writer is None:
                raise InvalidEvent(
                    "unknown_schema",
                    f"writer fingerprint {data[2:HEADER_LEN].hex()} matches no schema in schemas/",
                )
            return writer, HEADER_LEN
        if len(data) >= REGISTRY_HEADER_LEN and data[0] == REGISTRY_MAGIC:
            schema_id = int.from_bytes(data[1:REGISTRY_HEADER_LEN], "big")
            writer = self._by_id.get(schema_id) or self._resolve_id(schema_id)
            return writer, REGISTRY_HEADER_LEN
        raise InvalidEvent("not_avro", "value is neither Avro single-object nor registry framed")

    def _resolve_id(self, schema_id: int) -> SchemaVersion:
        if self._registry is None:
            raise InvalidEvent(
                "unknown_schema",
                f"registry-framed record (schema id {schema_id}) but no schema registry is "
                "configured (DA_SCHEMA_REGISTRY_URL)",
            )
        text = self._registry.schema_text(schema_id)
        if text is None:
            raise InvalidEvent("unknown_schema", f"the schema registry has no schema {schema_id}")
        raw = json.loads(text)
        # A version schemas/ has is used as is; one it lacks (a newer producer's) is resolved
        # to the newest local version of the same record name.
        writer = self._by_header.get(_header(raw))
        if writer is None:
            parsed: Any = parse_schema(raw)
            name = self._by_full_name.get(parsed.get("name", ""))
            if name is None:
                raise InvalidEvent(
                    "unknown_schema", f"registry schema {schema_id} matches no schema in schemas/"
                )
            writer = SchemaVersion(name, 0, parsed, _header(raw), text)
        self._by_id[schema_id] = writer
        return writer

    def newest_body(self, name: str, data: bytes) -> int | None:
        """Where the body of ``data`` starts when it was written with the newest version of
        ``name`` (its fields in that version's order), else None (another schema or version,
        or not a record this codec reads: ``decode`` says which)."""
        try:
            writer, start = self._writer(data)
        except InvalidEvent:
            return None
        return start if writer is self._latest.get(name) else None

    def decode(self, name: str, data: bytes | None) -> dict[str, Any]:
        """Decode a record that must be of schema ``name``; anything else is an InvalidEvent."""
        if data is None:
            raise InvalidEvent("not_avro", "value is empty")
        writer, start = self._writer(data)
        if writer.name != name:
            raise InvalidEvent("wrong_schema", f"expected {name}, got {writer.name}")
        reader = self._latest[name]
        try:
            body = io.BytesIO(data)  # shares the bytes: no copy of the record
            body.seek(start)
            record = schemaless_reader(
                body,
                writer.parsed,
                None if reader is writer else reader.parsed,
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise InvalidEvent("corrupt_avro", f"{type(exc).__name__}: {exc}") from None
        assert isinstance(record, dict)  # a record schema always decodes to a dict
        return record


def _version(sv: SchemaVersion) -> int:
    return sv.version
