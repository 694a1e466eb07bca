"""The boilerplate of the small HTTP servers tests start on loopback."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Type


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive), and no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass


class LocalServer:
    """A threaded HTTP server on a port the OS picks, serving from a daemon thread.

    ``wrap_socket`` (for TLS) replaces the listening socket before serving.
    """

    def __init__(
        self,
        handler: Type[BaseHTTPRequestHandler],
        host: str = "127.0.0.1",
        wrap_socket: Optional[Callable[[socket.socket], socket.socket]] = None,
    ) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        if wrap_socket is not None:
            self.httpd.socket = wrap_socket(self.httpd.socket)
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
