"""Names more than one stage uses: stage names, and the headers one stage writes and another
reads. They live here because stages are siblings and import nothing from each other."""

from __future__ import annotations

GEP = "gep"
DEMUX = "demux"
COLLECTOR = "collector"
DEP_PREFIX = "dep."

# Names the raw format of a message on the ingest topic (GEP's format modules' ``NAME``).
FORMAT_HEADER = "da-format"
# Set by the collector on its dead letters; read by the ``collector-errors`` DEP.
H_APP = "da-app"
H_STATUS = "da-status"


def dep_stage(dep: str) -> str:
    """The stage name of a DEP (its consumer group and dead-letter topic derive from it)."""
    return f"{DEP_PREFIX}{dep}"
