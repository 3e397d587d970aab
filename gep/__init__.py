"""GEP, the global event processor: the front door of the pipeline.

It consumes raw events from the ingest topic, recognizes their format, validates them, normalizes
each into a ``CanonicalEvent`` keyed by its entity, and publishes it for the demux. An event that
can never be valid goes to GEP's dead-letter topic with its original bytes and a typed reason.
Each raw format is one module in ``gep.formats``.
"""
