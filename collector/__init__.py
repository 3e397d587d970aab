"""The collector: GEP's HTTP face. Trusted applications post events over HTTP; each
is checked at once (the answer says which field is wrong), produced onto the ingest topic, and
answered 202 only when the broker holds it. It also serves the query API over the tables the
``web-events`` and ``collector-errors`` DEPs keep. Stateless: run as many as the load needs.
"""
