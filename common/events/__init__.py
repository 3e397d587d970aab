"""Typed events at the stage boundaries, and their Avro records (see ``schemas/``).

Stages hand these frozen dataclasses and msgspec structs to each other's code; dicts exist only
inside the codec.
One module per contract: the canonical record, the proctoring DE, the learning DEs.
"""

from common.events.canonical import (
    CANONICAL,
    CanonicalEvent,
    Impact,
    Lineage,
    SystemChange,
    Usage,
    UsageMetrics,
)
from common.events.fulfillment import FULFILLMENT_DE, FulfillmentEvent
from common.events.learning import (
    CONTENT_FAMILIES,
    SYSTEM_DE,
    USAGE_DE,
    SystemEvent,
    UsageEvent,
)

__all__ = [
    "CANONICAL",
    "CONTENT_FAMILIES",
    "FULFILLMENT_DE",
    "SYSTEM_DE",
    "USAGE_DE",
    "CanonicalEvent",
    "FulfillmentEvent",
    "Impact",
    "Lineage",
    "SystemChange",
    "SystemEvent",
    "Usage",
    "UsageEvent",
    "UsageMetrics",
]
