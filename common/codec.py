"""Avro on the wire: single-object encoding with the schemas in ``schemas/``.

A message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema +
the binary record. The reader looks the writer schema up by fingerprint and resolves it to the
newest version of that name, so producers and consumers can be upgraded one at a time.
Schemas are parsed once; fastavro costs twice as much per record when handed a raw dict.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from common.errors import InvalidEvent

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # path under schemas/, e.g. "de/fulfillment"
    version: int
    parsed: Any
    header: bytes  # MAGIC + fingerprint


class Codec:
    """Encodes and decodes every schema under one directory."""

    def __init__(self, root: Path = SCHEMAS_DIR) -> None:
        self._by_header: dict[bytes, SchemaVersion] = {}
        self._latest: dict[str, SchemaVersion] = {}
        for path in sorted(root.rglob("v*.avsc")):
            name = path.parent.relative_to(root).as_posix()
            version = int(path.stem[1:])
            raw = json.loads(path.read_text())
            fp = int(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"), 16)
            sv = SchemaVersion(name, version, parse_schema(raw), MAGIC + fp.to_bytes(8, "little"))
            self._by_header[sv.header] = sv
            if name not in self._latest or version > self._latest[name].version:
                self._latest[name] = sv
        if not self._latest:
            raise FileNotFoundError(f"no Avro schemas (v*.avsc) under {root}")

    def names(self) -> list[str]:
        return sorted(self._latest)

    def latest(self, name: str) -> SchemaVersion:
        return self._latest[name]

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        sv = self._latest[name]
        buf = io.BytesIO()
        buf.write(sv.header)
        schemaless_writer(buf, sv.parsed, record)
        return buf.getvalue()

    def decode(self, name: str, data: bytes | None) -> dict[str, Any]:
        """Decode a record that must be of schema ``name``; anything else is an InvalidEvent."""
        if data is None or len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise InvalidEvent("not_avro", "value is not an Avro single-object encoded record")
        writer = self._by_header.get(data[:HEADER_LEN])
        if writer is None:
            raise InvalidEvent(
                "unknown_schema",
                f"writer fingerprint {data[2:HEADER_LEN].hex()} matches no schema in schemas/",
            )
        if writer.name != name:
            raise InvalidEvent("wrong_schema", f"expected {name}, got {writer.name}")
        reader = self._latest[name]
        try:
            record = schemaless_reader(
                io.BytesIO(data[HEADER_LEN:]),
                writer.parsed,
                None if reader is writer else reader.parsed,
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise InvalidEvent("corrupt_avro", f"{type(exc).__name__}: {exc}") from None
        assert isinstance(record, dict)  # a record schema always decodes to a dict
        return record
