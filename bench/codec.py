"""``python -m bench.codec [--records N] [--record docs/benchmarks.md]``: what a record costs the
codec, in each framing.

Encodes and decodes the same records (a fulfillment DE and a canonical v2 event, from the
schemas' examples) with Avro single-object encoding and with the registry wire format, the
latter against the registry of the settings (``DA_SCHEMA_REGISTRY_URL``, from ``da stack up``).
The registry's ids are resolved before the clock starts, as a stage's first record does; the
table counts the registry requests made while it ran, which must be 0. The machine's load
average is printed beside the figures: on a shared machine they are an indication only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import record
from cli.schemas import topic_schemas
from common.codec import SCHEMAS_DIR, Codec, SchemaIds
from common.events.canonical import CANONICAL
from common.events.fulfillment import FULFILLMENT_DE
from common.schema_registry import RegistryIds, make_client
from common.settings import Settings

BEGIN = "<!-- bench-codec:begin (written by `python -m bench.codec --record`) -->"
END = "<!-- bench-codec:end -->"


class CountingIds:
    """The registry the stages use, counting the requests the codec makes of it."""

    def __init__(self, inner: RegistryIds) -> None:
        self.inner, self.requests = inner, 0

    def writer_id(self, name: str, versions: list[str]) -> int:
        self.requests += 1
        return self.inner.writer_id(name, versions)

    def schema_text(self, schema_id: int) -> str | None:
        self.requests += 1
        return self.inner.schema_text(schema_id)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class Row:
    schema: str
    framing: str
    records: int
    encode_us: float
    decode_us: float
    size: int
    requests: int


def _example(name: str) -> dict[str, Any]:
    newest = max((SCHEMAS_DIR / name).glob("v*.example.json"), key=lambda p: int(p.stem[1:-8]))
    return dict(_timestamps(json.loads(newest.read_text())[0]))


def _timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_timestamps(v) for v in value]
    if isinstance(value, str) and len(value) > 18 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)
    return value


def _measure(codec: Codec, name: str, framing: str, n: int, counter: CountingIds | None) -> Row:
    record = _example(name)
    codec.decode(name, codec.encode(name, record))  # ids resolved, as by a stage's first record
    before = counter.requests if counter else 0
    started = time.perf_counter()
    encoded = [codec.encode(name, record) for _ in range(n)]
    encoded_s = time.perf_counter() - started
    started = time.perf_counter()
    for data in encoded:
        codec.decode(name, data)
    decoded_s = time.perf_counter() - started
    requests = (counter.requests - before) if counter else 0
    size = len(encoded[0])
    return Row(name, framing, n, encoded_s / n * 1e6, decoded_s / n * 1e6, size, requests)


def run(settings: Settings, n: int) -> list[Row]:
    if not settings.schema_registry_url:
        raise SystemExit("bench.codec: no DA_SCHEMA_REGISTRY_URL; run `da stack up` first")
    counter = CountingIds(RegistryIds(make_client(settings), topic_schemas(settings.namespace)))
    registry_ids: SchemaIds = counter
    plain, framed = Codec(), Codec(registry=registry_ids)
    rows = []
    try:
        for name in (FULFILLMENT_DE, CANONICAL):
            rows.append(_measure(plain, name, "single-object (C3 01 + fingerprint)", n, None))
            rows.append(_measure(framed, name, "registry (00 + id)", n, counter))
    finally:
        framed.close()
    return rows


def markdown(rows: list[Row], n: int) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Codec cost per record: {when}",
        "",
        f"`python -m bench.codec --records {n}` on {os.cpu_count()} cores, load average {load}"
        " (1, 5, 15 min) at the end, on a shared machine; compare the rows with each other,"
        " not with another run.",
        "",
        "| schema | framing | records | encode µs | decode µs | bytes | registry requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.schema}` | {r.framing} | {r.records} | {r.encode_us:.1f} | "
            f"{r.decode_us:.1f} | {r.size} | {r.requests} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000, help="per row (default 20000)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the table into FILE")
    args = parser.parse_args(argv)
    rows = run(Settings.load(), args.records)
    text = markdown(rows, args.records)
    print(text)
    if args.record:
        record(args.record, text, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
