"""A forward proxy and a TLS server for transport tests (standard library + trustme)."""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from typing import Any, Dict, List, Tuple
from urllib.parse import urlsplit

from localhttp import LocalServer, QuietHandler


class ForwardProxy:
    """An HTTP forward proxy: absolute-URL requests and CONNECT tunnels.

    ``routes`` maps a host name the client asks for ("service.test") to the
    (host, port) that really serves it, so tests never need DNS.
    """

    def __init__(self, routes: Dict[str, Tuple[str, int]]) -> None:
        self.routes = routes
        self.seen: List[Dict[str, Any]] = []
        proxy = self

        class Handle(QuietHandler):
            def _forward(self) -> None:
                parts = urlsplit(self.path)
                proxy.seen.append(
                    {"method": self.command, "target": self.path, "headers": dict(self.headers)}
                )
                host, port = proxy.routes.get(
                    parts.hostname or "", (parts.hostname or "", parts.port or 80)
                )
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(host, port, timeout=10)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("proxy-authorization", "proxy-connection")
                }
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Via", "1.1 test-proxy")
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def do_CONNECT(self) -> None:
                host, _, port = self.path.rpartition(":")
                proxy.seen.append(
                    {"method": "CONNECT", "target": self.path, "headers": dict(self.headers)}
                )
                target = proxy.routes.get(host, (host, int(port)))
                upstream = socket.create_connection(target, timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                sockets = [self.connection, upstream]
                try:
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 10)
                        if not readable:
                            return
                        for sock in readable:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.connection else self.connection).sendall(
                                data
                            )
                finally:
                    upstream.close()
                    self.close_connection = True

        self.local = LocalServer(Handle)
        self.url = self.local.url

    def close(self) -> None:
        self.local.close()


class TLSServer:
    """An HTTPS server presenting a certificate from a trustme CA for ``hosts``."""

    def __init__(
        self,
        ca: Any,
        hosts: Tuple[str, ...] = ("service.test", "secure.test", "localhost", "127.0.0.1"),
    ) -> None:
        cert = ca.issue_cert(*hosts)

        class Handle(QuietHandler):
            def do_GET(self) -> None:
                body = b'{"secure": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.local = LocalServer(
            Handle, wrap_socket=lambda sock: context.wrap_socket(sock, server_side=True)
        )
        self.port = self.local.port
        self.url = f"https://localhost:{self.port}"

    def close(self) -> None:
        self.local.close()


NETWORK = ["requests", "urllib3", "urllib"]


def make_transport(name: str) -> Any:
    """A fresh transport by name; skips the test when its library is not installed."""
    import pytest

    from cyberun.transports import transport_by_name

    if name in ("requests", "urllib3"):
        pytest.importorskip(name)
    return transport_by_name(name)
