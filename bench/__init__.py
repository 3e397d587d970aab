"""``make bench``: the throughput of each stage and of the whole pipeline on real Kafka and
PostgreSQL.

``python -m bench.pipeline`` generates realistic proctoring events
(``cli.sample.fulfillments``), produces them to the ingest topic as ``da emit`` does, runs GEP,
demux and the fulfillment-state DEP each alone on the preloaded input (each in a fresh child
process, so CPU and peak memory are its own), then runs the three as real ``da`` processes on
fresh topics and times the stream end to end. Every run uses its own namespace and database
schema and removes them at the end.
``--record`` writes the figures into ``docs/benchmarks.md``.
"""
