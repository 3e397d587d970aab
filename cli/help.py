"""What ``da --help`` and every command's ``--help`` say beyond the docstrings: the overview, the
exit codes, one example per command, and plain metavars (``FILE``, ``--rate RATE``) where the
help renderer would print types (``<bool>``, ``{file}``).

Examples live here, keyed by command path, so that a command module stays about what it does;
``tests/unit/test_help.py`` fails when a command has none.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, get_args

OVERVIEW = """\
da-pipeline turns raw event streams into live state in PostgreSQL, through Apache Kafka.

GEP (global event processor) validates and normalizes every raw format; the demux fans each
event out into discrete events (DEs), one metric each; DEPs (discrete event processors) are
consumer groups that keep state stores in PostgreSQL or emit more DEs. Each is its own process:
`da gep run`, `da demux run`, `da dep run NAME`.

Settings are DA_* environment variables (the README's settings table); after `da stack up` the
local stack's are found from any folder of the checkout. DA_LOG_LEVEL=DEBUG adds the traceback
behind an error line.
"""

EXIT_CODES = (
    (0, "done"),
    (1, "the work failed (bad rows, refused deliveries, an incompatible schema)"),
    (2, "usage or configuration error (an option, an input file, a DA_* setting)"),
    (3, "a service unreachable or unavailable (Kafka, PostgreSQL)"),
    (130, "interrupted (Ctrl-C)"),
)


def root_help() -> str:
    # "\b" keeps click from rewrapping the table.
    table = "\n".join(f"  {code:<3}  {meaning}" for code, meaning in EXIT_CODES)
    status = "  `da status` answers as a monitoring check: 0 OK, 1 warning, 2 critical, 3 unknown"
    return f"{OVERVIEW}\n\b\nExit codes:\n{table}\n{status}\n"


EXAMPLES = {
    "emit": "da emit data/sample/fulfillments.csv --rate 500",
    "load": "da load history.csv --window 2000   # then: da status",
    "fulfillments": "da fulfillments -o json",
    "replay": "da replay fulfillment-state --from 2026-11-01T00:00:00Z   # the DEP stopped",
    "parked": "da parked",
    "learning": "da learning --limit 10",
    "stack up": "export $(da stack up)",
    "stack down": "da stack down --purge   # --force while stages still run",
    "stack status": "da stack status || da stack up",
    "stack broker": "da stack broker kill 2 && da stack broker start 2",
    "sample fulfillments": "da sample fulfillments --count 200 --to events.csv",
    "sample learning": "da sample learning --students 25 --to class.jsonl",
    "sample workflow": "da sample workflow --count 20 --to commands.jsonl",
    "topics ensure": "DA_PARTITIONS=12 da topics ensure",
    "topics list": "da topics list",
    "db migrate": "da db migrate",
    "schemas register": "da schemas register",
    "schemas check": "da schemas check || echo 'a schema change would break subscribers'",
    "schemas list": "da schemas list --markdown",
    "run": "DA_INSTANCE_ID=demux-2 da run demux",
    "up": "da up --instances 2",
    "deploy k8s": "DA_PARTITIONS=12 da deploy k8s --namespace da --kafka kafka:9092 --to k8s/",
    "down": "da down",
    "status": "da status --watch 5 --partitions",
    "web": "DA_CLOCK=event da web   # then open http://127.0.0.1:8088/fulfillments",
    "gep run": "DA_INSTANCE_ID=gep-2 da gep run",
    "demux run": "da demux run",
    "dep run": "da dep run fulfillment-state",
    "dep list": "da dep list",
    "dlq list": "da dlq list",
    "dlq show": "da dlq show gep --reason bad_timestamp -o json",
    "dlq replay": "da dlq replay gep --reason bad_timestamp --dry-run",
    "collector run": "DA_COLLECTOR_PORT=9000 da collector run",
    "apps add": "da apps add shop-web --rate 500 --read",
    "apps list": "da apps list -o csv",
    "apps revoke": "da apps revoke shop-web",
    "apps rotate": "da apps rotate shop-web --grace 86400",
    "workflow set-state": "da workflow set-state uid://A003/X1/X1a Reviewing",
    "workflow set-substate": "da workflow set-substate uid://A003/X1/X1a PipelineCalibration",
    "workflow set-exec": "da workflow set-exec uid://A003/X1/X1a EU",
    "workflow clear-exec": "da workflow clear-exec uid://A003/X1/X1a",
    "workflow set-flag": "da workflow set-flag uid://A003/X1/X1a priority=high",
    "workflow clear-flag": "da workflow clear-flag uid://A003/X1/X1a priority",
    "workflow get": "da workflow get uid://A003/X1/X1a",
    "workflow list": "da workflow list --state Reviewing -o json",
    "workflow history": "da workflow history uid://A003/X1/X1a",
    "workflow board": "da workflow board",
    "workflow simulate": "da workflow simulate --ous 30 --seed 3",
}


def _metavar(param: Any) -> str:
    """What an option takes, as the README writes it: ``--rate N``, ``--since TIME``."""
    kind = getattr(param, "type_descriptor", None)
    if kind is None:
        return str(param.name).upper()
    if kind.is_choice:
        return "|".join(map(str, kind.choices))
    types = set(get_args(kind.annotation)) - {type(None)} or {kind.annotation}
    if types & {int, float}:
        return "N"
    if datetime in types or param.name in ("since", "until"):
        return "TIME"
    if Path in types:
        return "PATH"
    return str(param.name).upper()


def polish(command: Any, path: tuple[str, ...] = ()) -> None:
    """Walk the command tree (typer's click objects) and set examples and metavars."""
    children = getattr(command, "commands", None)
    if children is not None:
        for name, child in children.items():
            polish(child, (*path, name))
        return
    example = EXAMPLES.get(" ".join(path))
    if example:
        command.epilog = f"\b\nExample:\n  {example}"
    for param in command.params:
        if param.param_type_name == "argument":
            # Typer writes a required argument as "{file}" in the usage line and adds its type
            # ("FILE <file>") in the list; the conventional FILE / [FILE] is plainer.
            name = param.metavar or param.name.upper()
            param.metavar = name
            shown = name if param.required else f"[{name}]"
            param._usage_display_name = lambda shown=shown: shown
            param.display_type_rich = lambda ctx: None
        elif getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: no "<bool>"
        elif param.metavar is None:
            param.metavar = _metavar(param)
        placeholder = param.default == 0 and not getattr(param, "is_flag", False)
        if "(default DA_" in (param.help or "") or placeholder:
            # The setting's default, or "off": not a value worth printing as "[default: 0]".
            param.show_default = False
