"""Uploads: local checks, folders as zips, fresh presigned URLs on failure, the upload cache."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest
from uploadsink import UploadSink

import cyberun
from cyberun import ParameterError
from cyberun._uploads import CACHE_MAX_AGE, pack_folder
from cyberun.cli import main
from cyberun.testing import CyberunEmulator

from .conftest import ClientFactory, routes


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def storage_puts(server: CyberunEmulator) -> int:
    return sum(1 for r in server.storage_requests if r.route == "upload")


def photo_zip(folder: Path, name: str = "photos.zip", payload: bytes = b"jpeg") -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("photo_001.jpg", payload)
    return path


def photo_folder(folder: Path) -> Path:
    photos = folder / "photos"
    (photos / "b").mkdir(parents=True)
    (photos / "z.jpg").write_bytes(b"z" * 3000)
    (photos / "a.jpg").write_bytes(b"a" * 2000)
    (photos / "b" / "c.jpg").write_bytes(b"c" * 1000)
    if hasattr(os, "symlink"):
        (photos / "link.jpg").symlink_to(photos / "a.jpg")
        (photos / "outside").symlink_to(folder, target_is_directory=True)
    return photos


# --- local checks -----------------------------------------------------------------------------


def test_validate_accepts_a_path_and_an_open_file_for_a_file_parameter(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    archive = photo_zip(tmp_path)
    task = client.run("gaussian-splat", {"images": archive, "iterations": 100}, validate=True)
    assert task.wait().task_status == "completed"
    with archive.open("rb") as file:
        task = client.run("gaussian-splat", {"images": file, "iterations": 100}, validate=True)
    assert task.wait().task_status == "completed"


def test_a_file_of_the_wrong_type_or_size_is_refused_before_anything_is_sent(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server, max_upload_size=1000)
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG" + b"x" * 2000)
    server.clear_logs()
    with pytest.raises(ParameterError) as caught:
        client.run("gaussian-splat", {"images": picture})
    problems = caught.value.problems
    assert any("takes .zip, application/zip, not 'photo.png'" in p for p in problems)
    assert any("2004 bytes, above the upload limit of 1000" in p for p in problems)
    with pytest.raises(ParameterError, match="no such file"):
        client.run("gaussian-splat", {"images": tmp_path / "missing.zip"})
    assert routes(server, "presign") == 0 and storage_puts(server) == 0
    assert routes(server, "run") == 0


def test_the_default_limit_is_the_documented_500_mb() -> None:
    assert cyberun.Client("sk-x").max_upload_size == 500 * 1000 * 1000
    with pytest.raises(cyberun.ConfigurationError, match="max_upload_size"):
        cyberun.Client("sk-x", max_upload_size=-1)


# --- folders -----------------------------------------------------------------------------------


def test_a_folder_is_packed_deterministically_without_following_symlinks(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path)
    first, second = io.BytesIO(), io.BytesIO()
    packed = pack_folder(photos, first)
    os.utime(str(photos / "a.jpg"), (1, 1))  # times do not matter
    pack_folder(photos, second)
    assert packed == 6000
    assert first.getvalue() == second.getvalue()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["a.jpg", "b/c.jpg", "z.jpg"]
        assert archive.read("b/c.jpg") == b"c" * 1000
        assert all(not info.filename.startswith("/") for info in archive.infolist())


def test_a_folder_for_a_zip_parameter_is_uploaded_as_a_zip_with_progress(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    photos = photo_folder(tmp_path)
    progress: List[Tuple[str, int, int]] = []
    task = client.run(
        "gaussian-splat",
        {"images": photos, "iterations": 100},
        on_upload_progress=lambda *args: progress.append(args),
    )
    assert task.wait().task_status == "completed"
    key = task._uploads["images"].file_key
    assert key.endswith("photos.zip")
    content = server.stored_bytes(key)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == ["a.jpg", "b/c.jpg", "z.jpg"]
    done = [sent for _, sent, _ in progress]
    assert done == sorted(done) and progress[0][1] <= 6000  # packing first
    assert progress[-1][1] == progress[-1][2] == 6000 + len(content)  # then the upload


def test_a_folder_for_a_parameter_that_takes_no_zip_is_refused(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    server.add_workflow(
        "image-edit",
        parameters=[{"key": "image", "type": "file", "required": True, "accept": ["image/*"]}],
    )
    with pytest.raises(ParameterError, match="a folder can only be sent as a zip"):
        client.run("image-edit", {"image": photo_folder(tmp_path)})
    picture = tmp_path / "ok.png"
    picture.write_bytes(b"\x89PNG")
    client.run("image-edit", {"image": picture}).wait()  # image/* takes a .png


def test_the_cli_uploads_a_folder(
    server: CyberunEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", server.api_key)
    monkeypatch.setenv("CYBERUN_BASE_URL", server.base_url)
    out, err = io.StringIO(), io.StringIO()
    photos = photo_folder(tmp_path)
    code = main(
        ["run", "gaussian-splat", "--file", f"images={photos}", "--wait"], stdout=out, stderr=err
    )
    assert code == 0, err.getvalue()
    assert routes(server, "presign") == 1


# --- failed PUTs ---------------------------------------------------------------------------------


def test_a_put_refused_is_sent_again_to_a_fresh_presigned_url(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    archive = photo_zip(tmp_path)
    server.inject("status", route="upload", status=403)  # an expired upload URL
    key = client.upload_file(archive)
    assert routes(server, "presign") == 2 and storage_puts(server) == 2
    assert server.stored_bytes(key) == archive.read_bytes()


@pytest.mark.parametrize("transport", ["requests", "urllib3", "urllib"])
def test_a_put_cut_mid_body_is_sent_again_from_the_start(tmp_path: Path, transport: str) -> None:
    if transport != "urllib":
        pytest.importorskip(transport)
    data = os.urandom(3 * 1024 * 1024 + 5)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    with UploadSink(reset_puts=1, reset_after=1024 * 1024) as sink:
        client = cyberun.Client(
            "sk-test",
            base_url=sink.url,
            transport=transport,
            retry=cyberun.RetryPolicy(attempts=1),
        )
        with client:
            key = client.upload_file(source)
    assert key == "inputs/2/data.bin"  # the second presigned URL
    assert len(sink.presigns) == 2
    assert sink.puts == [
        {"path": "/sink/2?X-Amz-Signature=s", "size": len(data), "sha256": sha256(data)}
    ]


RSS_SCRIPT = """
import resource, sys
import cyberun

path, url, transport = sys.argv[1:4]
with cyberun.Client("sk-test", base_url=url, transport=transport) as client:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    client.upload_file(path)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="resource and sparse files are POSIX")
@pytest.mark.parametrize("transport", ["requests", "urllib3", "urllib"])
def test_a_2_gib_upload_keeps_memory_flat(tmp_path: Path, transport: str) -> None:
    size = 2 * 1024**3
    sparse = tmp_path / "sparse.bin"
    with sparse.open("wb") as file:
        file.truncate(size)  # a hole: no disk space, reads as zeros
    with UploadSink() as sink:
        done = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, str(sparse), sink.url, transport],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        assert sink.puts[0]["size"] == size
    before_kib, peak_kib = map(int, done.stdout.split())
    # ru_maxrss starts from what the process held before the upload (imports,
    # and a forked parent's pages where the platform starts it by fork): the
    # upload itself must add less than 64 MiB.
    assert peak_kib - before_kib < 64 * 1024, (
        f"peak RSS {peak_kib} KiB (before the upload: {before_kib} KiB)"
    )


# --- the upload cache ---------------------------------------------------------------------------


def test_the_cache_reuses_a_file_key_without_presign_or_put(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    archive = photo_zip(tmp_path)
    cache = tmp_path / "cache"
    first = make_client(server, upload_cache=cache)
    task = first.run("gaussian-splat", {"images": archive, "iterations": 100})
    assert task._uploads["images"].cached is False
    server.clear_logs()
    second = make_client(server, upload_cache=cache)  # another client, another process alike
    again = second.run("gaussian-splat", {"images": archive, "iterations": 200})
    assert routes(server, "presign") == 0 and storage_puts(server) == 0
    assert again._uploads["images"].file_key == task._uploads["images"].file_key
    assert again.wait().task_status == "completed"
    (entry,) = list(cache.iterdir())
    assert server.api_key not in entry.read_text() and entry.name.endswith(".json")


def test_the_cache_is_keyed_by_base_url_and_team(tmp_path: Path) -> None:
    archive = photo_zip(tmp_path)
    cache = tmp_path / "cache"
    with CyberunEmulator(time_scale=0.02) as one, CyberunEmulator(time_scale=0.02) as two:
        for server in (one, two):
            with cyberun.Client(server.api_key, base_url=server.base_url, upload_cache=cache) as c:
                c.upload_file(archive)
            assert routes(server, "presign") == 1
        with cyberun.Client(
            one.jwt, team_id=one.team_id, base_url=one.base_url, upload_cache=cache
        ) as c:
            c.upload_file(archive)  # another credential, another entry
        assert routes(one, "presign") == 2
    assert len(list(cache.iterdir())) == 3


def test_a_cache_entry_older_than_20_hours_is_not_used(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    archive = photo_zip(tmp_path)
    cache = tmp_path / "cache"
    make_client(server, upload_cache=cache).upload_file(archive)
    (entry,) = list(cache.iterdir())
    data = json.loads(entry.read_text())
    data["uploaded_at"] = time.time() - CACHE_MAX_AGE - 1
    entry.write_text(json.dumps(data))
    server.clear_logs()
    make_client(server, upload_cache=cache).upload_file(archive)
    assert routes(server, "presign") == 1


def test_changed_bytes_miss_the_cache(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    client = make_client(server, upload_cache=cache)
    first = client.upload_file(photo_zip(tmp_path, payload=b"one"))
    second = client.upload_file(photo_zip(tmp_path, payload=b"two"))
    assert first != second and routes(server, "presign") == 2


def test_a_400_naming_a_cached_input_uploads_it_again_and_resubmits_once(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    archive = photo_zip(tmp_path)
    client = make_client(server, upload_cache=tmp_path / "cache")
    task = client.run("gaussian-splat", {"images": archive, "iterations": 100})
    old_key = task._uploads["images"].file_key
    assert server.delete_object(old_key)  # the service let the input go (inputs are kept one day)
    server.clear_logs()
    again = client.run("gaussian-splat", {"images": archive, "iterations": 100})
    runs = [r.status for r in server.requests if r.route == "run"]
    assert runs == [400, 202]
    assert routes(server, "presign") == 1 and storage_puts(server) == 1
    assert again._uploads["images"].file_key != old_key
    assert again.wait().task_status == "completed"


def test_a_400_about_something_else_is_raised_as_it_is(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server, upload_cache=tmp_path / "cache")
    archive = photo_zip(tmp_path)
    client.upload_file(archive)
    server.clear_logs()
    server.inject("status", route="run", status=400, body={"error": "quota exceeded"})
    with pytest.raises(cyberun.BadRequest, match="quota exceeded"):
        client.run("gaussian-splat", {"images": archive})
    assert routes(server, "run") == 1


def test_the_cache_is_off_by_default(
    server: CyberunEmulator,
    make_client: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    client = make_client(server)
    archive = photo_zip(tmp_path)
    client.upload_file(archive)
    client.upload_file(archive)
    assert routes(server, "presign") == 2
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    make_client(server, upload_cache=True).upload_file(archive)
    assert len(list((tmp_path / "xdg" / "cyberun" / "uploads").iterdir())) == 1
