"""``/metrics``, ``/healthz`` and ``/readyz`` of a stage process, on ``DA_METRICS_PORT``.

``DA_METRICS_PORT=0`` serves nothing; a port serves there (on ``DA_METRICS_HOST``); ``-1`` takes
any free port. The port actually bound is logged (``serving /metrics ... on host:port``), so
several instances on one host can each take a free one; ``da up`` gives each instance its stage's
registry port plus 100 per instance instead, so the ports are known in advance.
"""

from __future__ import annotations

import errno
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.observe import StageObserver

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, observer: StageObserver, host: str, port: int) -> None:
        handler = _handler_for(observer)
        try:
            self.server = ThreadingHTTPServer((host, max(port, 0)), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # Another process holds it (two instances on one host): any free port, logged.
            log.warning("port %d is taken; serving on a free port instead", port)
            self.server = ThreadingHTTPServer((host, 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="health-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(observer: StageObserver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(observer.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                why = observer.problem()
                self._answer(503 if why else 200, (why or "ok").encode() + b"\n")
            elif path == "/readyz":
                ready = observer.ready()
                body = b"ok\n" if ready else b"not yet in its consumer group\n"
                self._answer(200 if ready else 503, body)
            else:
                self._answer(404, b"/metrics, /healthz or /readyz\n")

        def _answer(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would drown the stage's own lines."""

    return Handler
