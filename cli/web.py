"""``da web``: the browser console (``web/``), served until SIGTERM / SIGINT."""

from __future__ import annotations

import signal

import typer

from common.kafka import check_kafka


def web() -> None:
    """Serve the read-only browser console on DA_WEB_HOST:DA_WEB_PORT (default
    http://127.0.0.1:8088): /fulfillments (the wait-time board), /status (every stage, as `da
    status`), /workflow (the OUS board) and /learning (the class), live over server-sent events.
    Waits are measured to now (DA_CLOCK=wall) or to the newest event (DA_CLOCK=event, for
    replayed history); a wait past DA_WAIT_SLA_S gets a badge."""
    import uvicorn

    from cli.main import load_settings
    from dep.lifecycle import Lifecycle
    from dep.ous_lifecycle import LIFECYCLE
    from web.app import create_app

    settings = load_settings()
    check_kafka(settings)
    api = create_app(settings, list(Lifecycle.load(LIFECYCLE).states))
    # As `da collector run`: exit 0 on SIGTERM / SIGINT after uvicorn's graceful stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    typer.echo(f"console on http://{settings.web_host}:{settings.web_port}/fulfillments", err=True)
    uvicorn.run(
        api,
        host=settings.web_host,
        port=settings.web_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
        # Event streams never end by themselves: a stop does not wait for them.
        timeout_graceful_shutdown=1,
    )


def register(app: typer.Typer) -> None:
    app.command("web")(web)
