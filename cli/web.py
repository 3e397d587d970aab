"""``da web``: the browser console (``web/``), served until SIGTERM / SIGINT."""

from __future__ import annotations

import signal
from types import FrameType

import typer

from common.kafka import check_kafka


def web() -> None:
    """Serve the read-only browser console on DA_WEB_HOST:DA_WEB_PORT (default
    http://127.0.0.1:8088): /fulfillments (the wait-time board), /status (every stage, as `da
    status`), /workflow (the OUS board) and /learning (the class), live over server-sent events.
    Waits are measured to now (DA_CLOCK=wall) or to the newest event (DA_CLOCK=event, for
    replayed history); a wait past DA_WAIT_SLA_S gets a badge."""
    import uvicorn

    from cli.load_status import load_json
    from cli.main import load_settings
    from dep.lifecycle import Lifecycle
    from dep.ous_lifecycle import LIFECYCLE
    from web.app import create_app

    settings = load_settings()
    check_kafka(settings)
    api = create_app(settings, list(Lifecycle.load(LIFECYCLE).states), initial_load=load_json)
    hub = api.state.hub

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Event streams never end by themselves: end them now, cleanly, so that browsers
            # reconnect (to this server's successor) instead of seeing a broken response.
            hub.stop_soon()
            super().handle_exit(sig, frame)

    # As `da collector run`: exit 0 on SIGTERM / SIGINT after uvicorn's graceful stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    typer.echo(f"console on http://{settings.web_host}:{settings.web_port}/fulfillments", err=True)
    config = uvicorn.Config(
        api,
        host=settings.web_host,
        port=settings.web_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    Server(config).run()


def register(app: typer.Typer) -> None:
    app.command("web")(web)
