"""Raw-socket servers for tests where an HTTP library would hide the behaviour.

``RawServer(script)`` accepts connections on loopback and hands each one,
with the request head (and body, by Content-Length) already read, to
``script(conn, request)`` in a thread of its own: the script writes whatever
bytes it likes, as slowly as it likes. ``Blackhole`` is a listener whose
backlog is full, so a connect to it hangs until it times out.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

Script = Callable[[socket.socket, "RawRequest"], None]


class RawRequest:
    """One request as the server read it."""

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, _ = [*lines[0].split(" "), "", "", ""][:3]
        self.headers: Dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()

    def __repr__(self) -> str:
        return f"<RawRequest {self.method} {self.target}>"


def read_request(conn: socket.socket) -> Optional[RawRequest]:
    """Read one request head and its Content-Length body; None if the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    request = RawRequest(head, b"")
    length = int(request.headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    request.body = rest[:length]
    return request


class RawServer:
    """A loopback server that runs ``script`` for every connection (see the module docstring)."""

    def __init__(self, script: Script, host: str = "127.0.0.1", read: bool = True) -> None:
        self.script = script
        self.read = read
        self.requests: List[RawRequest] = []
        self.connections = 0
        self.stop = threading.Event()
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if not self.read:
                self.script(conn, RawRequest(b"", b""))
                return
            request = read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            self.script(conn, request)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drip(conn: socket.socket, data: bytes, gap: float, stop: threading.Event) -> None:
    """Send ``data`` one byte at a time, ``gap`` seconds apart, until done or stopped."""
    for i in range(len(data)):
        if stop.wait(gap):
            return
        conn.sendall(data[i : i + 1])


class Blackhole:
    """A listener on loopback with a full backlog: a connect to it hangs (SYNs unanswered)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = socket.socket()
        self.listener.bind((host, 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.fillers: List[socket.socket] = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((host, self.port))
            self.fillers.append(filler)
        time.sleep(0.05)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.listener.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CuttingProxy:
    """A reverse proxy in front of a real server (the emulator) that spoils chosen answers.

    Every request is forwarded whole to ``upstream``, and its answer read in
    full there: the upstream has acted on it (a task exists). ``plan(request)``
    then says what the client gets: ``"pass"`` the answer as it came,
    ``"cut"`` the status line, the headers and half the body before the
    connection closes, ``"stall"`` the same and then nothing, ``"reset"`` a
    TCP reset instead of any answer.
    """

    def __init__(self, upstream: str, plan: Callable[[RawRequest], str]) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        self.plan = plan
        self.spoiled: List[str] = []
        #: (request, status, body) of every upstream answer, whole, as the upstream sent it.
        self.answers: List[Tuple[RawRequest, int, bytes]] = []
        proxy = self

        def script(conn: socket.socket, request: RawRequest) -> None:
            upstream_conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            headers = {k: v for k, v in request.headers.items() if k not in ("connection", "host")}
            upstream_conn.request(request.method, request.target, request.body or None, headers)
            answer = upstream_conn.getresponse()
            body = answer.read()
            upstream_conn.close()
            proxy.answers.append((request, answer.status, body))
            what = proxy.plan(request)
            if what != "pass":
                proxy.spoiled.append(f"{what} {request.method} {request.target}")
            if what == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    head += f"{name}: {value}\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            if what == "pass":
                conn.sendall(head.encode("latin-1") + body)
                return
            conn.sendall(head.encode("latin-1") + body[: len(body) // 2])
            if what == "stall":
                proxy.server.stop.wait(30)

        self.server = RawServer(script)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
