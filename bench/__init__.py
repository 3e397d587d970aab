"""``make bench``: each stage of the pipeline against its bare-client ceiling, in the same run.

``python -m bench.pipeline`` generates realistic proctoring events (``cli.sample.fulfillments``),
produces them to the ingest topic as ``da emit`` does, and runs GEP, demux and the fulfillment-state
DEP each alone on the preloaded input beside a bare program doing the same step with the same
guarantees (``bench.bare``), each in a fresh child process so CPU and peak memory are its own; then
the learning workload, and the three stages as real ``da`` processes, as fast as they go and at a
fixed rate for the latency. Repetitions are interleaved and folded into min / median / max
(``bench.summary``). Every run uses its own namespaces and database schemas and removes them at the
end. ``--record`` writes the figures into ``docs/benchmarks.md``.
"""
