"""The emulator's storage listener: S3-like presigned GET and PUT on another loopback host."""

from __future__ import annotations

import re
import time
from typing import Dict, Optional
from urllib.parse import unquote

from ._faults import Fault
from ._http import Handler, StreamWriter
from ._world import BUCKET

__all__ = ["StorageHandler"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _s3_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class StorageHandler(Handler):
    """Serves ``/<bucket>/<key>`` with presigned query strings, like S3."""

    listener = "storage"

    def s3_error(self, status: int, code: str, message: str) -> None:
        self.record.status = status
        self.send_bytes(status, _s3_error(code, message), "application/xml")

    def handle_request(self) -> None:
        self.record.route = "download" if self.command in ("GET", "HEAD") else "upload"
        if not self.path_only.startswith(f"/{BUCKET}/"):
            self.read_body()
            self.s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
            return
        object_key = unquote(self.path_only[len(BUCKET) + 2 :])
        self.record.task_id = _task_of(object_key)
        if not self._apply_request_faults():
            return
        if "Authorization" in self.headers:
            # S3 refuses a request carrying two authentication mechanisms.
            self.read_body()
            self.s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            )
            return
        problem = self.world.check_signature(
            "GET" if self.command == "HEAD" else self.command,
            self.path_only,
            self.query,
            self.headers,
        )
        if problem is not None:
            self.read_body()
            self.s3_error(403, problem[0], problem[1])
            return
        if self.command == "PUT":
            self._put(object_key)
        elif self.command in ("GET", "HEAD"):
            self._get(object_key)
        else:
            self.read_body()
            self.s3_error(405, "MethodNotAllowed", "The specified method is not allowed")

    def _apply_request_faults(self) -> bool:
        """Faults before answering; False when the request was answered (or cut)."""
        route = self.record.route
        faults = self.world.faults.take(
            ("latency", "status", "reset"),
            route,
            self.record.task_id,
            # A download reset after N bytes is applied while writing the body.
            where=lambda f: f.kind != "reset" or route == "upload" or f.get("after_bytes") is None,
        )
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(float(fault.get("seconds", 0.5)))
            elif fault.kind == "reset":
                self._reset_after(fault)
            else:
                self.read_body()
                status = int(fault.get("status", 503))
                headers = {}
                if fault.get("retry_after") is not None:
                    headers["Retry-After"] = str(fault.get("retry_after"))
                self.record.status = status
                body = fault.get("body")
                if body is not None:
                    self.send_bytes(
                        status, str(body).encode(), "text/plain; charset=utf-8", headers
                    )
                else:
                    self.send_bytes(
                        status,
                        _s3_error("SlowDown", "injected failure"),
                        "application/xml",
                        headers,
                    )
                return False
        return True

    def _reset_after(self, fault: Fault) -> None:
        """Reset the connection, after reading the upload (or ``after_bytes`` of it)."""
        limit = fault.get("after_bytes")
        length = int(self.headers.get("Content-Length") or 0)
        left = length if limit is None else min(int(limit), length)
        while left > 0:
            piece = self.rfile.read(min(65536, left))
            if not piece:
                break
            left -= len(piece)
        self.reset_connection()

    def _put(self, object_key: str) -> None:
        world = self.world
        if world.upload_target(self.path_only) != object_key:
            self.read_body()
            self.s3_error(403, "AccessDenied", "This URL was not issued for an upload")
            return
        length = int(self.headers.get("Content-Length") or 0)
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        stored = world.store_upload(object_key, self.rfile, length, content_type)
        if stored is None:
            self.read_body()
            self.s3_error(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
            return
        self.send_bytes(200, b"", "application/xml", {"ETag": f'"{stored.etag}"'})

    def _get(self, object_key: str) -> None:
        stored = self.world.stored(object_key)
        if stored is None or not stored.readable:
            self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        size = stored.size
        status = 200
        headers: Dict[str, str] = {"Accept-Ranges": "bytes", "ETag": f'"{stored.etag}"'}
        start, end = 0, size - 1
        wanted = self.headers.get("Range")
        if wanted:
            found = _RANGE.match(wanted.strip())
            first = int(found.group(1)) if found and found.group(1) else None
            if found is None or first is None or first >= size:
                headers["Content-Range"] = f"bytes */{size}"
                self.record.status = 416
                self.send_bytes(
                    416,
                    _s3_error("InvalidRange", "The requested range is not satisfiable"),
                    "application/xml",
                    headers,
                )
                return
            start = first
            end = min(int(found.group(2)) if found.group(2) else size - 1, size - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        faults = {
            f.kind: f
            for f in self.world.faults.take(
                ("truncate", "slow_drip", "reset"), "download", self.record.task_id
            )
        }
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", stored.content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Request-ID", self.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = faults.get("truncate") or faults.get("reset")
        writer = StreamWriter(
            self,
            chunked=False,
            cut_after=int(cut.get("after_bytes", length // 2)) if cut else None,
            cut_how="reset" if cut is not None and cut.kind == "reset" else "drop",
            drip_delay=float(faults["slow_drip"].get("delay", 0.001))
            if "slow_drip" in faults
            else None,
            stopping=self.world.stopping,
        )
        for piece in stored.chunks(start, end):
            writer.write(piece)


def _task_of(object_key: str) -> Optional[str]:
    parts = object_key.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] in ("tasks", "outputs") else None
