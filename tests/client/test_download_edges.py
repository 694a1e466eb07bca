"""Downloads against storage that misbehaves in ways the emulator does not: scripted answers."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import cyberun
from cyberun import DownloadError, ReadError, TaskResult
from cyberun._convert import structure
from cyberun.transports import MockTransport, Request, Response

CONTENT = bytes(range(256)) * 40  # 10 KiB
FILE_URL = "https://storage.example/bucket/out.png?X-Amz-Signature=abc"
API = "https://api.example"


def broken_after(data: bytes, cut: int) -> Iterator[bytes]:
    """A body that delivers ``cut`` bytes, then the connection breaks."""
    yield data[:cut]
    raise ReadError("connection reset by peer")


Storage = Callable[[Request, int], Response]


class Scripted:
    """Answers result requests with fresh links and storage requests with ``storage``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.storage_requests: List[Request] = []
        self.result_requests = 0

    def __call__(self, request: Request) -> Response:
        if request.url.startswith(API):
            self.result_requests += 1
            body = result_json(hours=1)
            return Response(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
        self.storage_requests.append(request)
        return self.storage(request, len(self.storage_requests))


def result_json(hours: float) -> Dict[str, Any]:
    expires = datetime.now(timezone.utc) + timedelta(hours=hours)
    return {
        "id": "t1",
        "task_status": "completed",
        "download_url": FILE_URL,
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }


def result(hours: float = 1.0) -> TaskResult:
    """A completed task's result whose link expires in ``hours`` (negative: expired)."""
    return structure(result_json(hours), TaskResult)


def client_for(storage: Storage) -> Tuple[cyberun.Client, Scripted]:
    scripted = Scripted(storage)
    client = cyberun.Client(
        "sk-test",
        base_url=API,
        transport=MockTransport(scripted),
        retry=cyberun.RetryPolicy(backoff=0.0),
    )
    return client, scripted


def range_start(request: Request) -> Optional[int]:
    value = request.headers.get("Range")
    return int(value[len("bytes=") : -1]) if value else None


def test_storage_that_ignores_range_is_restarted_from_zero(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        headers = {"Content-Length": str(len(CONTENT)), "Accept-Ranges": "bytes"}
        if n == 1:
            return Response(200, headers, stream=broken_after(CONTENT, 3000))
        assert range_start(request) == 3000  # it asked to resume...
        return Response(200, headers, content=CONTENT)  # ...and got the whole file again

    client, scripted = client_for(storage)
    (path,) = client.download(result(), tmp_path)
    assert path.read_bytes() == CONTENT
    assert len(scripted.storage_requests) == 2
    client.close()


def test_storage_without_range_support_restarts_the_file(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        headers = {"Content-Length": str(len(CONTENT))}  # no Accept-Ranges
        if n == 1:
            return Response(200, headers, stream=broken_after(CONTENT, 5000))
        assert range_start(request) is None  # nothing to resume from: a plain GET again
        return Response(200, headers, content=CONTENT)

    client, _ = client_for(storage)
    (path,) = client.download(result(), tmp_path)
    assert path.read_bytes() == CONTENT
    client.close()


def test_a_wrong_range_answer_is_an_error_and_keeps_nothing(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        if n == 1:
            headers = {"Content-Length": str(len(CONTENT)), "Accept-Ranges": "bytes"}
            return Response(200, headers, stream=broken_after(CONTENT, 3000))
        headers = {"Content-Range": f"bytes 0-{len(CONTENT) - 1}/{len(CONTENT)}"}
        return Response(206, headers, content=CONTENT)  # not the range that was asked for

    client, _ = client_for(storage)
    with pytest.raises(DownloadError, match="wrong range"):
        client.download(result(), tmp_path)
    assert list(tmp_path.iterdir()) == []
    client.close()


def test_a_transfer_that_keeps_breaking_gives_up_cleanly(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        start = range_start(request) or 0
        headers = {
            "Content-Range": f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}",
            "Accept-Ranges": "bytes",
        }
        return Response(206 if start else 200, headers, stream=broken_after(CONTENT[start:], 10))

    client, scripted = client_for(storage)
    with pytest.raises(DownloadError, match="kept failing"):
        client.download(result(), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert 2 <= len(scripted.storage_requests) <= 10  # bounded, not a loop
    client.close()


def test_storage_that_cannot_be_reached_gives_up_cleanly(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        raise cyberun.ConnectError("connection refused")

    client, scripted = client_for(storage)
    with pytest.raises(DownloadError, match="connection refused"):
        client.download(result(), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert len(scripted.storage_requests) <= 20  # the retry policy and the resumes, bounded
    client.close()


def test_a_body_shorter_than_announced_is_an_error(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        # A Content-Length the transport did not enforce: the downloader checks it too.
        return Response(200, {"Content-Length": str(len(CONTENT) + 5)}, content=CONTENT)

    client, _ = client_for(storage)
    with pytest.raises(DownloadError, match=f"got {len(CONTENT)} of {len(CONTENT) + 5} bytes"):
        client.download(result(), tmp_path)
    assert list(tmp_path.iterdir()) == []
    client.close()


def test_download_output_refreshes_a_result_that_has_expired() -> None:
    def storage(request: Request, n: int) -> Response:
        return Response(200, {"Content-Length": str(len(CONTENT))}, content=CONTENT)

    client, scripted = client_for(storage)
    buffer = io.BytesIO()
    assert client.download_output(result(hours=-1), "", buffer) == len(CONTENT)
    assert buffer.getvalue() == CONTENT
    assert scripted.result_requests == 1  # the stale links were never tried
    client.close()


def test_a_refreshed_result_without_the_output_is_an_error(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        return Response(403, {"Content-Type": "application/xml"}, b"<Error>Expired</Error>")

    client, scripted = client_for(storage)
    stale = TaskResult(
        id="t1",
        task_status=cyberun.TaskStatus.COMPLETED,
        download_urls={"9.images.7": FILE_URL},
        expires_at=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    with pytest.raises(DownloadError, match="no longer lists"):
        client.download(stale, tmp_path)
    assert scripted.result_requests == 1
    assert list(tmp_path.iterdir()) == []
    client.close()
