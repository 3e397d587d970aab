"""``python -m cli.stack fetch``: fetch the Kafka jars and the schema registry into the shared
cache ahead of the first ``da stack up`` (``make deps`` does)."""

from __future__ import annotations

import sys

from cli.stack import kafka, registry
from common.kafka import ServiceUnavailable


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print("usage: python -m cli.stack fetch", file=sys.stderr)
        return 2
    try:
        libs = kafka.fetch_jars()
        print(f"Kafka {kafka.KAFKA_VERSION} jars ready in {libs}")
        app = registry.fetch()
        print(f"Apicurio Registry {registry.VERSION} ready in {app}")
    except ServiceUnavailable as exc:
        print(f"da: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
