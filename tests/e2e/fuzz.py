"""``make fuzz``: the poison corpus and random adversarial events among good ones, through GEP,
demux and the DEPs as real processes, wave after wave for a given time; the figures (messages
tried per class, dead-lettered, stored, stalls, crashes, silent losses) go to
docs/reliability.md."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg import sql

from common.settings import Settings
from tests.e2e import poison_run
from tests.services import Services, acquire, drop_namespace


def wave(
    services: Services, limit: int, rounds: int, generated: int, seed: int
) -> poison_run.Figures:
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        database_url=services.database_url,
        namespace=f"f{uuid.uuid4().hex[:10]}",
        database_schema=f"f_{uuid.uuid4().hex[:10]}",
        partitions=3,
        poll_timeout_s=0.2,
        io_timeout_s=10,
        max_message_bytes=limit,
    )
    env = {
        **os.environ,
        "DA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DA_DATABASE_URL": settings.database_url,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_PARTITIONS": "3",
        "DA_POLL_TIMEOUT_S": "0.2",
        "DA_IO_TIMEOUT_S": "10",
        "DA_MAX_MESSAGE_BYTES": str(limit),
    }
    schema = sql.Identifier(settings.database_schema)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    try:
        with tempfile.TemporaryDirectory() as logs:
            return poison_run.run(
                settings,
                env,
                Path(logs),
                rounds=rounds,
                per_round=60,
                generated_per_round=generated,
                seed=seed,
                settle_s=300,
            )
    finally:
        drop_namespace(settings)


def render(total: poison_run.Figures, waves: int, minutes: float) -> str:
    lines = [
        "| class | tried | dead-lettered | stored |",
        "|---|---:|---:|---:|",
    ]
    for name, n in sorted(total.tried.items()):
        stored = total.stored_adversarial if name == "generated" else 0
        lines.append(f"| {name} | {n} | {total.dead_lettered[name]} | {stored} |")
    lines += [
        "",
        f"{waves} waves in {minutes:.1f} min; good events: {total.good_sent} sent, "
        f"{total.good_stored} stored. **Stalls {total.stalls}, crashes {total.crashes}, "
        f"silent losses {total.silent_losses}, duplicates {total.duplicates}, "
        f"retries over a bad message {len(total.bad_retries)}, wrong reasons "
        f"{len(total.wrong_reason)}.**",
    ]
    return "\n".join(lines) + "\n"


def record(path: Path, arguments: str, table: str) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    begin, end = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"
    text = path.read_text() if path.is_file() else ""
    section = (
        f"{begin}\n## Latest `make fuzz` run: {when}\n\n"
        f"`python -m tests.e2e.fuzz {arguments}` on {os.cpu_count()} cores, "
        f"{platform.platform()}\n\n{table}{end}"
    )
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="run waves until this long")
    parser.add_argument("--rounds", type=int, default=10, help="corpus rounds per wave")
    parser.add_argument("--generated", type=int, default=20, help="random events per round")
    parser.add_argument("--max-message-bytes", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    total = poison_run.Figures()
    started, waves = time.monotonic(), 0
    with ExitStack() as cleanup:
        services = acquire(cleanup)
        while waves == 0 or time.monotonic() - started < args.minutes * 60:
            f = wave(
                services, args.max_message_bytes, args.rounds, args.generated, args.seed + waves
            )
            waves += 1
            logging.info("wave %d: %s", waves, f.problems() or "clean")
            for name in ("tried", "dead_lettered"):
                getattr(total, name).update(getattr(f, name))
            for name in (
                "good_sent",
                "good_stored",
                "stored_adversarial",
                "crashes",
                "stalls",
                "duplicates",
                "errors_table_missing",
            ):
                setattr(total, name, getattr(total, name) + getattr(f, name))
            total.wrong_reason += f.wrong_reason
            total.bad_retries += f.bad_retries
    table = render(total, waves, (time.monotonic() - started) / 60)
    print(table)
    for problem in total.problems()[:20]:
        print("problem:", problem)
    if args.record:
        arguments = (
            f"--minutes {args.minutes:g} --rounds {args.rounds} --generated {args.generated} "
            f"--max-message-bytes {args.max_message_bytes} --seed {args.seed}"
        )
        record(args.record, arguments, table)
    raise SystemExit(0 if not total.problems() else 1)


if __name__ == "__main__":
    main()
