"""HTTP plumbing shared by the emulator's API and storage listeners."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import parse_qsl, urlsplit

from ._records import RecordedRequest
from ._world import World

__all__ = ["Dropped", "Handler", "Server", "StreamWriter"]

_SENSITIVE = {"authorization", "proxy-authorization", "x-team-id", "cookie"}
_MAX_BODY = 600 * 1024 * 1024


class Dropped(Exception):
    """Raised inside a handler once a fault has cut its connection."""


class Server(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that knows its open connections.

    The listen backlog is raised so that bursts of hundreds of clients are
    queued rather than refused (the standard library's default is 5).
    """

    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: Tuple[str, int], handler: type, world: World, listener: str
    ) -> None:
        self.world = world
        self.listener = listener
        self.connections: Set[socket.socket] = set()
        self.threads: Set[threading.Thread] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name=f"emulator-{self.listener}"
        )
        thread.daemon = True
        with self.connections_lock:
            self.threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # pragma: no cover - a handler crash must not kill the server
            pass
        finally:
            with self.connections_lock:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())
            self.shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open connection (at shutdown) so handler threads end."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join_threads(self, timeout: float) -> bool:
        """Wait for handler threads to finish; True when all did."""
        deadline = time.monotonic() + timeout
        while True:
            with self.connections_lock:
                threads = list(self.threads)
            if not threads:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            threads[0].join(left)


class Handler(BaseHTTPRequestHandler):
    """Common behaviour: HTTP/1.1 keep-alive, recording, JSON and error answers."""

    protocol_version = "HTTP/1.1"
    server_version = "CyberunEmulator/1.0"
    timeout = 30  # idle keep-alive connections are closed after this
    server: Server
    listener = "api"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def world(self) -> World:
        """The emulated world this listener serves."""
        return self.server.world

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is `emulator.requests`."""

    # -- dispatch -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self.path_only = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.record = RecordedRequest(
            listener=self.listener,
            method=self.command,
            path=parts.path,
            query={
                k: ("[redacted]" if k.lower().startswith("x-amz-") else v)
                for k, v in self.query.items()
            },
            headers={
                k: ("[redacted]" if k.lower() in _SENSITIVE else v)
                for k, v in self.headers.items()
            },
        )
        self.world.record(self.record)
        self.request_id = "req_" + uuid.uuid4().hex[:16]
        self.body_read: Optional[bytes] = None
        try:
            self.handle_request()
        except Dropped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            self.world.fire("answered", self.record, self.record.task_id)

    def handle_request(self) -> None:
        raise NotImplementedError

    def match(
        self, routes: List[Tuple[str, re.Pattern[str], str, Callable[..., None]]]
    ) -> Optional[Tuple[str, Callable[..., None], Dict[str, str]]]:
        """Find the route for this request; answers 404/405 itself when there is none."""
        allowed = []
        for method, pattern, name, handler in routes:
            found = pattern.match(self.path_only)
            if found:
                if method == self.command:
                    return name, handler, found.groupdict()
                allowed.append(method)
        if allowed:
            self.send_error_json(405, "method_not_allowed", f"use {', '.join(allowed)} here")
        else:
            self.send_error_json(404, "not_found", f"no such endpoint: {self.path_only}")
        return None

    # -- bodies -------------------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked), read once."""
        if self.body_read is None:
            self.body_read = self._read_body()
            if self.listener == "api":
                self.record.body = self.body_read
        return self.body_read

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise Dropped()
        return self.rfile.read(length) if length else b""

    def read_json(self) -> Any:
        """The request body parsed as JSON; answers 400 itself and returns None on failure."""
        body = self.read_body()
        try:
            return json.loads(body or b"{}")
        except ValueError:
            self.send_error_json(400, "invalid_json", "the request body is not valid JSON")
            return None

    # -- answers ------------------------------------------------------------------------

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        """Answer with a complete body."""
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-ID", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(
        self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None
    ) -> None:
        """Answer with JSON."""
        self.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def send_error_json(
        self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
    ) -> None:
        """Answer with the emulator's one error shape."""
        payload = {"error": {"code": code, "message": message}, "request_id": self.request_id}
        self.send_json(status, payload, headers)

    def reset_connection(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        except OSError:
            pass
        raise Dropped()


class StreamWriter:
    """Writes a body piece by piece, applying byte-level faults.

    Args:
        handler: the request handler whose socket is written.
        chunked: frame each piece as an HTTP/1.1 chunk.
        cut_after: stop after this many payload bytes: ``"drop"`` closes,
            ``"reset"`` sends a TCP RST.
        drip_delay: write one byte at a time, sleeping this long between bytes.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        chunked: bool,
        cut_after: Optional[int] = None,
        cut_how: str = "drop",
        drip_delay: Optional[float] = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.handler = handler
        self.chunked = chunked
        self.cut_after = cut_after
        self.cut_how = cut_how
        self.drip_delay = drip_delay
        self.stopping = stopping
        self.written = 0

    def write(self, data: bytes) -> None:
        """Write payload bytes (raises Dropped once a cut fault fires)."""
        if self.cut_after is not None and self.written + len(data) >= self.cut_after:
            keep = self.cut_after - self.written
            if keep > 0:
                self._emit(data[:keep])
            self.cut()
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.drip_delay is not None:
            for i in range(len(data)):
                if self.stopping():
                    raise Dropped()
                self._raw(data[i : i + 1])
                time.sleep(self.drip_delay)
        else:
            self._raw(data)

    def _raw(self, data: bytes) -> None:
        frame = b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        self.handler.wfile.write(frame)
        self.written += len(data)

    def cut(self) -> None:
        """End the connection mid-body, as the fault says."""
        if self.cut_how == "reset":
            self.handler.reset_connection()
        try:
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Dropped()

    def finish(self) -> None:
        """End the body properly."""
        if self.chunked:
            self.handler.wfile.write(b"0\r\n\r\n")
