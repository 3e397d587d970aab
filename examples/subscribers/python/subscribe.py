"""Read a da-pipeline discrete-event topic with stock libraries only (no code of the pipeline).

    pip install 'confluent-kafka[avro]'
    python subscribe.py --bootstrap localhost:9092 \
        --registry http://localhost:8081 --topic org.gooru.da.sink.demux.fulfillment

Each record's value is in the registry wire format: the deserializer fetches the writer schema
by the id in the record (once per id) from the schema registry. Prints one JSON object a line.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> None:
    parser = argparse.ArgumentParser(description="Read a da-pipeline DE topic (stock libraries).")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--registry", required=True, help="schema registry URL")
    parser.add_argument("--registry-auth", default="", help="user:password (basic auth)")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after seconds")
    args = parser.parse_args()

    registry_conf = {"url": args.registry}
    if args.registry_auth:
        registry_conf["basic.auth.user.info"] = args.registry_auth
    registry = SchemaRegistryClient(registry_conf)
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"outside-python-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            # The pipeline writes in Kafka transactions: read what was committed only.
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([args.topic])
    seen, deadline = 0, time.monotonic() + args.timeout
    try:
        while (not args.count or seen < args.count) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            ctx = SerializationContext(args.topic, MessageField.VALUE)
            record = deserialize(msg.value(), ctx)
            key = (msg.key() or b"").decode()
            print(json.dumps({"key": key, "value": record}, default=str), flush=True)
            seen += 1
    finally:
        consumer.close()
        registry.close()


if __name__ == "__main__":
    main()
