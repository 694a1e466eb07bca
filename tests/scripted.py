"""A small scripted HTTP/1.1 server for transport tests (standard library only)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from localhttp import LocalServer, QuietHandler


class ScriptedServer:
    """Serves fixed behaviours by path. ``gate`` holds streams until a test opens it.

    Paths:
        /json                 200, a small JSON body with Content-Length
        /echo                 200, JSON describing the request (method, path, headers, body)
        /status/<code>        that status with a JSON error body and Retry-After: 1
        /redirect             302 to /json
        /events/chunked       chunked SSE: one event, wait for the gate, one more event
        /events/close         the same, delimited by closing the connection
        /events/chunked-closing  chunked, announcing Connection: close (as the API does)
        /truncated            Content-Length 100 but only 10 bytes, then close
        /reset                a TCP reset instead of an answer
        /slow?seconds=s       sleep before answering
        /big?size=n           n bytes of body
        /hold                 headers, one byte, then nothing until the gate opens
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.gate = threading.Event()
        self.requests: List[Dict[str, Any]] = []
        self.written: Dict[str, float] = {}
        server = self

        class Handle(QuietHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                server._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        self.local = LocalServer(Handle, host)
        self.url = self.local.url

    def close(self) -> None:
        self.gate.set()
        self.local.close()

    # -- behaviours --------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = self._read_body(h)
        self.requests.append(
            {"method": h.command, "path": h.path, "headers": dict(h.headers), "body": body}
        )
        if path == "/json":
            self._send(h, 200, json.dumps({"ok": True}).encode(), "application/json")
        elif path == "/echo":
            payload = {
                "method": h.command,
                "path": h.path,
                "headers": {k.lower(): v for k, v in h.headers.items()},
                "body": body.decode("latin-1"),
                "chunked": h.headers.get("Transfer-Encoding") == "chunked",
            }
            self._send(h, 200, json.dumps(payload).encode(), "application/json")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            error = json.dumps({"error": {"code": "x", "message": f"status {code}"}}).encode()
            self._send(
                h, code, error, "application/json", {"Retry-After": "1", "X-Request-ID": "rid-1"}
            )
        elif path == "/redirect":
            self._send(h, 302, b"", "text/plain", {"Location": "/json"})
        elif path.startswith("/events/"):
            self._events(h, chunked=not path.endswith("close"), announce_close="closing" in path)
        elif path == "/truncated":
            h.send_response(200)
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.write(b"0123456789")
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
        elif path == "/reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
        elif path == "/slow":
            time.sleep(float(query.get("seconds", "2")))
            self._send(h, 200, b"late", "text/plain")
        elif path == "/big":
            size = int(query.get("size", str(5 * 1024 * 1024)))
            self._send(h, 200, b"x" * size, "application/octet-stream")
        elif path == "/hold":
            h.send_response(200)
            h.send_header("Content-Length", "2")
            h.end_headers()
            h.wfile.write(b"a")
            h.wfile.flush()
            self.gate.wait(30)
            try:
                h.wfile.write(b"b")
            except OSError:
                pass
        else:
            self._send(h, 404, b"{}", "application/json")

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(h.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    h.rfile.readline()
                    return b"".join(parts)
                parts.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _events(
        self, h: BaseHTTPRequestHandler, *, chunked: bool, announce_close: bool = False
    ) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        if announce_close or not chunked:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()

        def write(data: bytes) -> None:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            h.wfile.flush()

        write(b"event: first\ndata: 1\n\n")
        self.written["first"] = time.monotonic()
        self.gate.wait(30)
        write(b"event: second\ndata: 2\n\n")
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
        h.close_connection = True
