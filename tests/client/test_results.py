"""Results and files: downloads (names, resume, refresh, atomicity) and uploads."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

import cyberun
from cyberun import DownloadError, ParameterError
from cyberun.strategies import output_names, safe_file_name
from cyberun.testing import CyberunEmulator, ManualClock

from .conftest import ClientFactory


def completed(
    client: cyberun.Client, workflow: str = "text-to-image", **parameters: object
) -> cyberun.TaskHandle:
    task = client.run(workflow, {"prompt": "x", "steps": 2, **parameters})
    task.wait()
    return task


def listing(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_writes_the_primary_output(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)
    progress: List[Tuple[str, int, Optional[int]]] = []
    paths = task.download(tmp_path / "out", on_progress=lambda *args: progress.append(args))
    assert [p.name for p in paths] == ["output_00001_.png"]
    assert paths[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert progress[-1] == ("output_00001_.png", paths[0].stat().st_size, paths[0].stat().st_size)
    assert listing(tmp_path / "out") == ["output_00001_.png"]  # no temporary files left


def test_several_outputs_are_named_by_key_and_fetched_once(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client, "multi-output")
    server.clear_logs()
    paths = client.download(task, tmp_path)
    assert [p.name for p in paths] == ["9.images.0.png", "9.images.1.png", "9.images.2.png"]
    # download_url repeats download_urls["9.images.0"]: fetched once
    assert len(server.storage_requests) == 3
    assert len({p.read_bytes() for p in paths}) == 3


def test_no_credential_ever_reaches_storage(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client, "multi-output")
    task.download(tmp_path)
    assert server.storage_requests
    for record in server.storage_requests:
        assert record.header("Authorization") is None and record.header("X-Team-ID") is None


def test_existing_files_are_not_overwritten_unless_asked(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)
    (tmp_path / "output_00001_.png").write_bytes(b"mine")
    server.clear_logs()
    with pytest.raises(DownloadError, match="overwrite=True"):
        task.download(tmp_path)
    assert (tmp_path / "output_00001_.png").read_bytes() == b"mine"
    assert server.storage_requests == []  # refused before downloading anything
    task.download(tmp_path, overwrite=True)
    assert (tmp_path / "output_00001_.png").read_bytes().startswith(b"\x89PNG")


def test_an_expired_url_is_refreshed_once() -> None:
    with CyberunEmulator(
        clock=ManualClock(),
        url_ttl=60,
    ) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url)
        task = client.run("text-to-image", {"prompt": "x", "steps": 2})
        server.advance(10)
        result = client.get_result(task.id)
        server.advance(120)  # the links in `result` have expired
        server.clear_logs()
        buffer = io.BytesIO()
        # expires_at is in the past: one fresh GET of the result, then the file
        written = client.download_output(result, "", buffer)
        assert written == len(buffer.getvalue()) > 0
        assert [r.route for r in server.requests] == ["result"]
        client.close()


def test_links_already_expired_are_refreshed_before_downloading(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)
    server.inject("expire_urls", route="result", seconds=0)
    result = client.get_result(task.id)  # expires_at is now: stale before use
    server.clear_logs()
    paths = client.download(result, tmp_path)
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert [r.route for r in server.requests] == ["result"]
    assert [r.status for r in server.storage_requests] == [200]


def test_a_403_from_storage_triggers_one_refresh(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    import attrs

    client = make_client(server)
    task = completed(client)
    result = client.get_result(task.id)
    revoked = attrs.evolve(
        result, download_url=result.download_url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    )  # type: ignore[union-attr]
    server.clear_logs()
    paths = client.download(revoked, tmp_path)
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert [r.status for r in server.storage_requests] == [403, 200]
    assert [r.route for r in server.requests] == ["result"]


def test_a_second_403_is_an_error_not_a_loop(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)
    server.inject("status", route="download", status=403, times=None)
    with pytest.raises(DownloadError, match="HTTP 403"):
        task.download(tmp_path)
    assert [r.status for r in server.storage_requests] == [403, 403]
    assert listing(tmp_path) == []


def test_a_truncated_transfer_resumes_with_a_range_request(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)
    whole = io.BytesIO()
    client.download_output(task, "", whole)
    server.inject("truncate", route="download", after_bytes=100)
    server.clear_logs()
    paths = client.download(task, tmp_path)
    assert paths[0].read_bytes() == whole.getvalue()
    ranges = [r.header("Range") for r in server.storage_requests]
    assert ranges == [None, "bytes=100-"]


def test_a_failed_download_leaves_nothing_behind(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server, retry=1)
    task = completed(client, "multi-output")
    server.inject("status", route="download", status=500, times=None)
    with pytest.raises(DownloadError, match="HTTP 500") as info:
        task.download(tmp_path)
    assert info.value.status == 500
    assert listing(tmp_path) == []


def test_an_interrupted_download_leaves_nothing_behind(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    task = completed(client)

    def interrupt(name: str, done: int, total: Optional[int]) -> None:
        raise KeyboardInterrupt

    server.inject("slow_drip", route="download", delay=0.0)
    with pytest.raises(KeyboardInterrupt):
        task.download(tmp_path, on_progress=interrupt)
    assert listing(tmp_path) == []


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    server: CyberunEmulator,
    make_client: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(server)
    task = completed(client)
    import errno

    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.inner = real_fdopen(fd, "wb")

        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.inner.close()
            super().close()

        def fileno(self) -> int:
            return self.inner.fileno()

    monkeypatch.setattr("cyberun.strategies.results.os.fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(DownloadError, match="no space left"):
        task.download(tmp_path)
    assert listing(tmp_path) == []


def test_download_output_into_a_file_object(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = completed(client, "multi-output")
    buffer = io.BytesIO()
    assert client.download_output(task.id, "9.images.1", buffer) == len(buffer.getvalue())
    assert buffer.getvalue().startswith(b"\x89PNG")
    with pytest.raises(DownloadError, match="no output 'nope'"):
        client.download_output(task.id, "nope", io.BytesIO())


def test_run_and_wait_downloads(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    seen: List[str] = []
    outcome = client.run_and_wait(
        "text-to-image",
        {"prompt": "x", "steps": 2},
        download_to=tmp_path,
        on_event=lambda e: seen.append(e.type),
    )
    assert outcome.result.task_status == "completed" and seen[-1] == "completed"
    assert [p.name for p in outcome.files] == ["output_00001_.png"]
    assert client.run_and_wait("text-to-image", {"prompt": "y", "steps": 2}).files == []


# --- uploads ---------------------------------------------------------------------------------


def test_file_parameters_are_uploaded_from_paths_and_open_files(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    photos = tmp_path / "photos.zip"
    photos.write_bytes(b"PK\x03\x04" + b"\x00" * 5000)
    progress: List[Tuple[str, int, int]] = []
    task = client.run(
        "gaussian-splat", {"images": photos}, on_upload_progress=lambda *a: progress.append(a)
    )
    assert task.wait().task_status == "completed"
    assert progress[-1] == ("images", 5004, 5004)
    puts = [r for r in server.storage_requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].header("Authorization") is None
    with photos.open("rb") as handle:
        assert client.run("gaussian-splat", {"images": handle}).wait().task_status == "completed"


class Wrapped:
    """A seekable file object without a file descriptor (a decrypting wrapper, say)."""

    def __init__(self, data: bytes, seekable: bool = True) -> None:
        self.inner = io.BytesIO(data)
        self.name = "wrapped.zip"
        self._seekable = seekable

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(size)

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self.inner.seek(offset, whence)


def test_uploads_from_file_objects_without_a_descriptor(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    wrapped = Wrapped(b"PK\x03\x04" + b"\x01" * 3000)
    wrapped.read(4)  # the upload starts where the object stands
    key = client.upload_file(wrapped)  # type: ignore[arg-type]
    assert key.endswith("/wrapped.zip")
    put = [r for r in server.storage_requests if r.method == "PUT"][-1]
    assert put.header("Content-Length") == "3000"
    with pytest.raises(cyberun.ConfigurationError, match="cannot tell the size"):
        client.upload_file(Wrapped(b"data", seekable=False))  # type: ignore[arg-type]
    assert len([r for r in server.storage_requests if r.method == "PUT"]) == 1


def test_validate_lists_every_problem_before_anything_is_sent(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    server.clear_logs()
    with pytest.raises(ParameterError) as info:
        client.run(
            "text-to-image", {"steps": 500, "sampler": "nope", "colour": "red"}, validate=True
        )
    assert len(info.value.problems) == 4  # prompt missing, steps too big, bad sampler, unknown key
    assert [r.route for r in server.requests] == ["workflow"]
    assert client.run("text-to-image", {"prompt": "fine"}, validate=True).id


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/path.png", "path.png"),
        ("C:\\Windows\\system32\\x.dll", "x.dll"),
        ("..", "output"),
        ("", "output"),
        ("a\x00b.png", "ab.png"),
        ("CON.png", "_CON.png"),
        ("nul", "_nul"),
        ("lpt1.txt", "_lpt1.txt"),
        (".hidden", "_hidden"),
        ("what?.png", "what_.png"),
        ("trailing. ", "trailing"),
    ],
)
def test_safe_file_names(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_very_long_names_keep_their_extension() -> None:
    name = safe_file_name("é" * 300 + ".png")
    assert name.endswith(".png") and len(name.encode()) <= 200


def test_output_names_are_deterministic_and_unique() -> None:
    pairs = [
        ("", "https://s/x/out.png?sig"),
        ("9.images.0", "https://s/x/a.png?sig"),
        ("9.IMAGES.0", "https://s/x/b.png?sig"),
        ("../../etc/passwd", "https://s/x/c?sig"),
        ("12.gifs.0", "https://s/x/d.gif?sig"),
        ("out.png", "https://s/x/out.png?other"),
    ]
    names = [name for _, _, name in output_names(pairs)]
    assert names == [
        "out.png",
        "9.images.0.png",
        "9.IMAGES.0-1.png",
        "passwd",
        "12.gifs.0.gif",
        "out-1.png",
    ]
    assert output_names(pairs) == output_names(pairs)
