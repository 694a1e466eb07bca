"""The emulator's storage listener: S3-like presigned GET and PUT on another loopback host."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Dict, Optional, Tuple
from urllib.parse import quote, unquote, urlencode

from ._http import Handler, StreamWriter

if TYPE_CHECKING:  # pragma: no cover
    from ._emulator import CyberunEmulator

__all__ = ["StorageHandler", "sign_url"]

BUCKET = "cyberun-emulator"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _signature(
    key: bytes, method: str, path: str, amz_date: str, expires: str, signed: str
) -> str:
    message = "\n".join((method, path, amz_date, expires, signed)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_url(
    emulator: CyberunEmulator,
    method: str,
    object_key: str,
    ttl: float,
    signed_headers: Tuple[str, ...] = ("host",),
) -> str:
    """A presigned URL for ``object_key`` valid for ``ttl`` emulated seconds."""
    path = f"/{BUCKET}/{quote(object_key)}"
    amz_date = emulator._wall_datetime(emulator.clock.now()).strftime("%Y%m%dT%H%M%SZ")
    expires = str(max(int(ttl), 0))
    signed = ";".join(signed_headers)
    signature = _signature(emulator._signing_key, method, path, amz_date, expires, signed)
    query = urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": "EMULATOR/auto/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": signed,
            "X-Amz-Signature": signature,
        }
    )
    return f"{emulator.storage_url}{path}?{query}"


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
        problem = self._check_signature()
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
        route = self.record.route
        for fault in self.emulator.faults.take(("latency", "status"), route, self.record.task_id):
            if fault.kind == "latency":
                time.sleep(float(fault.get("seconds", 0.5)))
            else:
                self.read_body()
                status = int(fault.get("status", 503))
                headers = {}
                if fault.get("retry_after") is not None:
                    headers["Retry-After"] = str(fault.get("retry_after"))
                self.record.status = status
                self.send_bytes(
                    status, _s3_error("SlowDown", "injected failure"), "application/xml", headers
                )
                return False
        return True

    def _check_signature(self) -> Optional[Tuple[str, str]]:
        emulator = self.emulator
        q = self.query
        try:
            amz_date = q["X-Amz-Date"]
            expires = q["X-Amz-Expires"]
            signed = q["X-Amz-SignedHeaders"]
            given = q["X-Amz-Signature"]
        except KeyError:
            return (
                "AccessDenied",
                "Query-string authentication requires the signature parameters",
            )
        expected = _signature(
            emulator._signing_key,
            self.command if self.command != "HEAD" else "GET",
            self.path_only,
            amz_date,
            expires,
            signed,
        )
        if not hmac.compare_digest(expected, given):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        issued_at = (issued - emulator._wall_base).total_seconds()
        if emulator.clock.now() > issued_at + int(expires) + 1:
            return ("AccessDenied", "Request has expired")
        if "content-length" in signed.split(";") and self.command == "PUT":
            declared = emulator._upload_sizes.get(self.path_only)
            if self.headers.get("Content-Length") != str(declared):
                return ("SignatureDoesNotMatch", "Content-Length is signed and does not match")
        if "if-none-match" in signed.split(";") and self.headers.get("If-None-Match") != "*":
            return ("SignatureDoesNotMatch", "If-None-Match is signed and is missing")
        return None

    def _put(self, object_key: str) -> None:
        body = self.read_body()
        emulator = self.emulator
        with emulator._lock:
            if object_key in emulator._objects:
                exists = True
            else:
                exists = False
                emulator._objects[object_key] = (
                    body,
                    self.headers.get("Content-Type", "application/octet-stream"),
                )
        if exists:
            self.s3_error(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
            return
        self.send_bytes(
            200, b"", "application/xml", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}
        )

    def _get(self, object_key: str) -> None:
        stored = self.emulator._objects.get(object_key)
        if stored is None:
            self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        content, content_type = stored
        status = 200
        headers: Dict[str, str] = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{hashlib.md5(content).hexdigest()}"',
        }
        body = content
        wanted = self.headers.get("Range")
        if wanted:
            found = _RANGE.match(wanted.strip())
            start = int(found.group(1)) if found and found.group(1) else None
            if found is None or start is None or start >= len(content):
                headers["Content-Range"] = f"bytes */{len(content)}"
                self.record.status = 416
                self.send_bytes(
                    416,
                    _s3_error("InvalidRange", "The requested range is not satisfiable"),
                    "application/xml",
                    headers,
                )
                return
            end = int(found.group(2)) if found.group(2) else len(content) - 1
            end = min(end, len(content) - 1)
            body = content[start : end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        faults = {
            f.kind: f
            for f in self.emulator.faults.take(
                ("truncate", "slow_drip", "reset"), "download", self.record.task_id
            )
        }
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
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
            cut_after=int(cut.get("after_bytes", len(body) // 2)) if cut else None,
            cut_how="reset" if cut is not None and cut.kind == "reset" else "drop",
            drip_delay=float(faults["slow_drip"].get("delay", 0.001))
            if "slow_drip" in faults
            else None,
            stopping=self.emulator._stopping,
        )
        for offset in range(0, len(body), 16384):
            writer.write(body[offset : offset + 16384])


def _task_of(object_key: str) -> Optional[str]:
    parts = object_key.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] in ("tasks", "outputs") else None
