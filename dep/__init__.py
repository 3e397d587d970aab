"""DEPs, the discrete event processors: consumer groups that turn discrete events into state.

Each DEP is one module exposing a ``SPEC`` (its name, input DE buckets, tables, migrations and a
builder) and one line in ``dep.registry``. Its handler gets typed, decoded events and a database
cursor inside a transaction it does not own; the run loop commits state and offsets together.
"""
