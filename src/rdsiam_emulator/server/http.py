"""The one HTTP port: ``/_rdsiam/...`` to our routes, everything else to moto's server app.

moto's ``DomainDispatcherApplication`` is the WSGI app behind ``moto_server``; it picks the AWS
service from the request (signature scope, host) and keeps its state in this process, where the
endpoints' credential lookup and policy evaluator read it. RDS calls that change instances pass
through ``rds_api`` so they act on real backends too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from rdsiam_emulator.server import rds_api
from rdsiam_emulator.server.routes import ROUTES, error
from rdsiam_emulator.server.runtime import Runtime

PREFIX = "/_rdsiam/"


class App:
    """The WSGI application of the HTTP port."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.rds = rds_api.RdsHooks(runtime)
        self._moto: Any = None
        self._moto_lock = threading.Lock()

    def moto(self) -> Any:
        """moto's dispatcher, built on first use (importing it takes seconds: ``serve`` calls
        this while backends boot, with /_rdsiam/health already answering 503)."""
        with self._moto_lock:
            if self._moto is None:
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication,
                    create_backend_app,
                )

                self._moto = DomainDispatcherApplication(create_backend_app)
            return self._moto

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) or path == PREFIX.rstrip("/"):
            request = Request(environ)
            handler = ROUTES.get(path)
            if handler is None:
                response = error(404, f"no such path: {path}")
            elif request.method not in ("GET", "HEAD"):
                response = error(405, "only GET")
            else:
                response = handler(request, self.runtime)
            return response(environ, start_response)
        return self.rds.call(self.moto(), environ, start_response)


class HttpServer:
    """A threaded werkzeug server for ``App`` on its own thread; ``bind`` raises ``OSError``."""

    def __init__(self, app: App, host: str, port: int) -> None:
        # werkzeug's handler: moto's own only keeps underscores in S3 metadata header names
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                   request_handler=WSGIRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="rdsiam-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
