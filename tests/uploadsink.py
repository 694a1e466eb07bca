"""A presign endpoint and a storage host that discards what is PUT: uploads of any size.

Tests import `UploadSink`. It
answers ``POST /api/v1/r/files/presign`` as the API does and takes ``PUT
/sink/N`` bodies of exactly the signed ``Content-Length``, reading them in
1 MiB pieces and keeping only their count and SHA-256. ``reset_puts`` cuts
that many PUTs after ``reset_after`` bytes with a TCP reset.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from typing import Any, Dict, List

from localhttp import LocalServer, QuietHandler


class UploadSink:
    """See the module docstring. Use as a context manager."""

    def __init__(self, reset_puts: int = 0, reset_after: int = 65536) -> None:
        self.reset_puts = reset_puts
        self.reset_after = reset_after
        self.presigns: List[Dict[str, Any]] = []
        self.puts: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink.lock:
                    sink.presigns.append(body)
                    number = len(sink.presigns)
                answer = {
                    "file_key": f"inputs/{number}/{body['file_name']}",
                    "upload_url": f"{sink.url}/sink/{number}?X-Amz-Signature=s",
                    "upload_headers": {"Content-Length": str(body["file_size"])},
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                with sink.lock:
                    reset = sink.reset_puts > 0
                    sink.reset_puts -= 1 if reset else 0
                digest = hashlib.sha256()
                got = 0
                while got < length:
                    piece = self.rfile.read(min(1024 * 1024, length - got))
                    if not piece:
                        break
                    digest.update(piece)
                    got += len(piece)
                    if reset and got >= sink.reset_after:
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.connection.close()
                        self.close_connection = True
                        return
                with sink.lock:
                    sink.puts.append(
                        {"path": self.path, "size": got, "sha256": digest.hexdigest()}
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = LocalServer(Handler)
        self.url = self.server.url

    def __enter__(self) -> UploadSink:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.close()
