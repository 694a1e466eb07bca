"""Downloads that must refuse or clean up: unfinished tasks, used folders, hostile names,
symlinks, stale temporary files, error pages, objects that change between resumes, modes."""

from __future__ import annotations

import io
import os
import stat
import threading
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyberun
from cyberun import DownloadError, ReadError, TaskCancelled, TaskFailed, TaskResult
from cyberun._convert import structure
from cyberun._names import fold, output_names, safe_file_name
from cyberun.strategies._destination import (
    TEMP_SUFFIX,
    _host_tag,
    check_destination,
    create_temp,
    is_temp_name,
    remove_stale,
)
from cyberun.testing import CyberunEmulator
from cyberun.transports import MockTransport, Request, Response

from .conftest import ClientFactory, routes

API = "https://api.example"
CONTENT = bytes(range(256)) * 40


def result_with(status: str = "completed", **fields: Any) -> TaskResult:
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    body: Dict[str, Any] = {
        "id": "t1",
        "task_status": status,
        "expires_at": expires.isoformat(),
        "task_error": "",
    }
    body.update(fields)
    return structure(body, TaskResult)


def storage_client(
    storage: Callable[[Request, int], Response],
) -> Tuple[cyberun.Client, List[Request]]:
    seen: List[Request] = []

    def handler(request: Request) -> Response:
        if request.url.startswith(API):
            pytest.fail(f"no API request was expected: {request.url}")
        seen.append(request)
        return storage(request, len(seen))

    client = cyberun.Client(
        "sk-test",
        base_url=API,
        transport=MockTransport(handler),
        retry=cyberun.RetryPolicy(backoff=0.0),
    )
    return client, seen


def serve(content: bytes = CONTENT, **headers: str) -> Callable[[Request, int], Response]:
    def storage(request: Request, n: int) -> Response:
        return Response(200, {"Content-Length": str(len(content)), **headers}, content=content)

    return storage


def one_output(url_name: str = "out.png") -> TaskResult:
    return result_with(download_url=f"https://storage.example/b/{url_name}?X-Amz-Signature=s")


# --- unfinished tasks ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "queued", "running"])
def test_downloading_an_unfinished_task_names_its_status(tmp_path: Path, status: str) -> None:
    client, seen = storage_client(serve())
    with client, pytest.raises(DownloadError, match=f"is {status}, not completed"):
        client.download(result_with(status), tmp_path / "out")
    with pytest.raises(DownloadError, match=status):
        client.download_output(result_with(status), "", io.BytesIO())
    assert seen == [] and not (tmp_path / "out").exists()


def test_downloading_a_failed_task_is_task_failed_with_the_servers_message(
    tmp_path: Path,
) -> None:
    client, _ = storage_client(serve())
    with client, pytest.raises(TaskFailed, match="CUDA out of memory") as caught:
        client.download(result_with("failed", task_error="CUDA out of memory"), tmp_path)
    assert caught.value.error == "CUDA out of memory" and caught.value.task_id == "t1"


def test_downloading_a_cancelled_task_is_task_cancelled(tmp_path: Path) -> None:
    client, _ = storage_client(serve())
    with client, pytest.raises(TaskCancelled, match="cancelled"):
        client.download(result_with("cancelled"), tmp_path)


# --- the destination, checked before a task starts -----------------------------------------------


def test_run_and_wait_refuses_a_folder_in_use_before_starting_a_task(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    (tmp_path / "output_00001_.png").write_bytes(b"an earlier run")
    client = make_client(server)
    with pytest.raises(DownloadError, match="already holds files"):
        client.run_and_wait("text-to-image", {"prompt": "x"}, download_to=tmp_path)
    assert routes(server, "run") == 0
    assert (tmp_path / "output_00001_.png").read_bytes() == b"an earlier run"
    outcome = client.run_and_wait(
        "text-to-image", {"prompt": "x"}, download_to=tmp_path, overwrite=True
    )
    assert [p.name for p in outcome.files] == ["output_00001_.png"]


def test_run_and_wait_refuses_a_file_as_the_folder(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    (tmp_path / "out").write_text("x")
    client = make_client(server)
    with pytest.raises(DownloadError, match="not a folder"):
        client.run_and_wait("text-to-image", {"prompt": "x"}, download_to=tmp_path / "out" / "a")
    with pytest.raises(DownloadError, match="not a folder"):
        client.run_and_wait("text-to-image", {"prompt": "x"}, download_to=tmp_path / "out")
    assert routes(server, "run") == 0


def test_a_folder_holding_only_stale_temporary_files_counts_as_empty(tmp_path: Path) -> None:
    fd, _ = create_temp(tmp_path, "a.png")
    os.close(fd)
    assert check_destination(tmp_path) == tmp_path
    assert check_destination(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DownloadError, match="not writable"):
            check_destination(locked / "out")
    finally:
        locked.chmod(0o700)


def test_an_unwritable_folder_is_refused_as_the_os_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check asks the OS (os.access), which says yes to root; here it says no.
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(DownloadError, match="not writable"):
        check_destination(tmp_path / "out")


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("evil\u202egnp.exe", "evilgnp.exe"),  # right-to-left override: would show as .png
        ("a\u0085b\u009bc.png", "abc.png"),  # C1 controls
        ("zero\u200bwidth\ufeff.png", "zerowidth.png"),
        ("CON .png", "_CON .png"),
        ("con.tar.gz", "_con.tar.gz"),
        ("COM\u00b9", "_COM\u00b9"),
        ("lpt\u00b3.txt", "_lpt\u00b3.txt"),
        ("COM0.png", "_COM0.png"),
        ("CONIN$", "_CONIN$"),
        ("NUL...", "_NUL"),
        ("aux. .png", "_aux. .png"),
        ("console.png", "console.png"),
        ("name. . .", "name"),
        ("e\u0301.png", "\u00e9.png"),  # NFD in, NFC out
        ("\u202e", "output"),
    ],
)
def test_hostile_names_are_made_safe(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_twins_that_one_file_system_or_another_would_merge_get_distinct_names() -> None:
    keys = [
        "Image.png",
        "image.png",
        "IMAGE.PNG",
        "\u00e9.png",
        "e\u0301.png",
        "stra\u00dfe",
        "STRASSE",
    ]
    pairs = [(key, f"https://s/x/{i}?sig") for i, key in enumerate(keys)]
    names = [name for _, _, name in output_names(pairs)]
    assert names[0] == "Image.png" and names[3] == "\u00e9.png"
    assert len({fold(n) for n in names}) == len(names)


def test_the_run_record_name_takes_part_in_uniqueness() -> None:
    pairs = [
        ("cyberun-task.json", "https://s/x/a.json?sig"),
        ("CYBERUN-TASK", "https://s/x/b.json"),
    ]
    names = [n for _, _, n in output_names(pairs, reserved=["cyberun-task.json"])]
    assert names == ["cyberun-task-1.json", "CYBERUN-TASK-2.json"]


class CaseFoldingFolder:
    """A file system that merges names as macOS (APFS/HFS+) and Windows (NTFS) do."""

    def __init__(self) -> None:
        self.files: Dict[str, str] = {}

    def write(self, name: str) -> None:
        key = fold(unicodedata.normalize("NFD", name))
        assert key not in self.files, f"{name!r} would overwrite {self.files[key]!r}"
        self.files[key] = name


keys_strategy = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("./\\. CON\u202e"),
        max_size=40,
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(keys=keys_strategy, url_names=st.lists(st.text(max_size=20), max_size=12))
def test_any_set_of_keys_gets_unique_names_inside_the_folder(
    keys: List[str], url_names: List[str]
) -> None:
    pairs = [
        (key, f"https://s/b/{url_names[i] if i < len(url_names) else 'o.png'}?sig")
        for i, key in enumerate(keys)
    ]
    named = output_names(pairs, reserved=["cyberun-task.json"])
    folder = CaseFoldingFolder()
    folder.write("cyberun-task.json")
    base = Path("/downloads")
    for _, _, name in named:
        assert name and name not in (".", "..") and "/" not in name and "\\" not in name
        assert not name.startswith(".") and name == name.rstrip(". ")
        assert unicodedata.normalize("NFC", name) == name
        assert len(name.encode("utf-8")) <= 200
        assert all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp") for c in name)
        assert (base / name).parent == base
        folder.write(name)


def test_twins_all_land_on_a_real_folder(tmp_path: Path) -> None:
    keys = ["A.png", "a.png", "\u00c5.png", "A\u030a.png"]
    urls = {key: f"https://storage.example/b/{i}.png?sig" for i, key in enumerate(keys)}
    client, _ = storage_client(lambda request, n: Response(200, {}, content=request.url.encode()))
    with client:
        paths = client.download(result_with(download_urls=urls), tmp_path)
    assert len({p.name for p in paths}) == 4 and len(list(tmp_path.iterdir())) == 4
    assert {p.read_bytes().decode() for p in paths} == set(urls.values())


# --- symlinks ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
@pytest.mark.parametrize("dangling", [True, False])
def test_a_symlink_at_the_target_is_never_replaced_or_followed_without_overwrite(
    tmp_path: Path, dangling: bool
) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    if not dangling:
        elsewhere.write_bytes(b"precious")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "out.png").symlink_to(elsewhere)
    client, seen = storage_client(serve())
    with client:
        with pytest.raises(DownloadError, match="symlink"):
            client.download(one_output(), folder)
        assert seen == []
        assert (folder / "out.png").is_symlink()
        assert elsewhere.exists() is not dangling
        (path,) = client.download(one_output(), folder, overwrite=True)
    assert not path.is_symlink() and path.read_bytes() == CONTENT
    if dangling:
        assert not elsewhere.exists()  # never written through
    else:
        assert elsewhere.read_bytes() == b"precious"


def test_a_case_twin_already_on_disk_counts_as_existing(tmp_path: Path) -> None:
    (tmp_path / "OUT.PNG").write_bytes(b"x")
    client, _ = storage_client(serve())
    with client, pytest.raises(DownloadError, match="already exists"):
        client.download(one_output(), tmp_path)


# --- temporary files -----------------------------------------------------------------------------


def test_temporary_files_have_a_recognisable_name(tmp_path: Path) -> None:
    names: List[str] = []

    def storage(request: Request, n: int) -> Response:
        def body() -> Iterator[bytes]:
            names.extend(p.name for p in tmp_path.iterdir())
            yield CONTENT

        return Response(200, {}, stream=body())

    client, _ = storage_client(storage)
    with client:
        client.download(one_output(), tmp_path)
    (temp,) = names
    assert is_temp_name(temp) and temp.startswith(".out.png.") and temp.endswith(TEMP_SUFFIX)


def test_stale_temporary_files_are_removed_by_the_next_download(tmp_path: Path) -> None:
    host = _host_tag()
    dead = tmp_path / f".out.png.{host}-999999999-0000abcd{TEMP_SUFFIX}"
    other_host_fresh = tmp_path / f".b.png.ffffffff-1-0000abcd{TEMP_SUFFIX}"
    other_host_old = tmp_path / f".c.png.ffffffff-1-0000abcd{TEMP_SUFFIX}"
    mine_live = tmp_path / f".d.png.{host}-{os.getpid()}-0000abcd{TEMP_SUFFIX}"
    not_ours = tmp_path / ".notes.part"
    for path in (dead, other_host_fresh, other_host_old, mine_live, not_ours):
        path.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(str(other_host_old), (old, old))
    client, _ = storage_client(serve())
    with client:
        client.download(one_output(), tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out.png", other_host_fresh.name, mine_live.name, not_ours.name])
    later = remove_stale(tmp_path, now=time.time() + 7200)  # an hour without writes: stale
    assert sorted(later) == sorted([other_host_fresh.name, mine_live.name])


# --- what storage answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "application/xml", "text/xml"]
)
def test_an_error_page_is_not_saved_as_the_output(tmp_path: Path, content_type: str) -> None:
    page = (
        b"<?xml version='1.0'?><Error><Code>AccessDenied</Code>\x1b]0;x\x07</Error>" + b"x" * 500
    )
    client, _ = storage_client(serve(page, **{"Content-Type": content_type}))
    with client, pytest.raises(DownloadError, match="AccessDenied") as caught:
        client.download(one_output(), tmp_path)
    assert "\x1b" not in str(caught.value) and "X-Amz-Signature=s" not in str(caught.value)
    assert len(str(caught.value)) < 600
    assert list(tmp_path.iterdir()) == []


def test_an_html_output_served_as_html_is_saved(tmp_path: Path) -> None:
    client, _ = storage_client(serve(b"<html>report</html>", **{"Content-Type": "text/html"}))
    with client:
        (path,) = client.download(one_output("report.html"), tmp_path)
    assert path.read_bytes() == b"<html>report</html>"


def cut_after(data: bytes, cut: int) -> Iterator[bytes]:
    yield data[:cut]
    raise ReadError("connection reset by peer")


@pytest.mark.parametrize(
    "validator", [("ETag", '"v1"'), ("Last-Modified", "Mon, 10 Feb 2025 14:01:30 GMT")]
)
def test_a_resume_sends_if_range_and_a_changed_object_restarts_from_zero(
    tmp_path: Path, validator: Tuple[str, str]
) -> None:
    name, value = validator
    changed = bytes(reversed(CONTENT))

    def storage(request: Request, n: int) -> Response:
        headers = {"Content-Length": str(len(CONTENT)), "Accept-Ranges": "bytes"}
        if n == 1:
            return Response(200, {**headers, name: value}, stream=cut_after(CONTENT, 3000))
        assert request.headers.get("If-Range") == value
        assert request.headers.get("Range") == "bytes=3000-"
        return Response(200, {**headers, name: "other"}, content=changed)  # it changed

    client, seen = storage_client(storage)
    with client:
        (path,) = client.download(one_output(), tmp_path)
    assert path.read_bytes() == changed and len(seen) == 2


def test_a_weak_etag_is_not_used_for_if_range(tmp_path: Path) -> None:
    def storage(request: Request, n: int) -> Response:
        headers = {"Content-Length": str(len(CONTENT)), "Accept-Ranges": "bytes", "ETag": 'W/"1"'}
        if n == 1:
            return Response(200, headers, stream=cut_after(CONTENT, 3000))
        assert "If-Range" not in request.headers
        rest = CONTENT[3000:]
        return Response(
            206, {"Content-Range": f"bytes 3000-{len(CONTENT) - 1}/{len(CONTENT)}"}, content=rest
        )

    client, _ = storage_client(storage)
    with client:
        (path,) = client.download(one_output(), tmp_path)
    assert path.read_bytes() == CONTENT


def test_a_206_from_another_object_is_not_spliced(tmp_path: Path) -> None:
    changed = bytes(reversed(CONTENT))

    def storage(request: Request, n: int) -> Response:
        size = str(len(CONTENT))
        if n == 1:
            headers = {"Content-Length": size, "Accept-Ranges": "bytes", "ETag": '"v1"'}
            return Response(200, headers, stream=cut_after(CONTENT, 3000))
        if n == 2:  # a server that ignores If-Range: part of the new object
            headers = {"Content-Range": f"bytes 3000-{len(CONTENT) - 1}/{size}", "ETag": '"v2"'}
            return Response(206, headers, content=changed[3000:])
        assert "Range" not in request.headers
        return Response(200, {"Content-Length": size, "ETag": '"v2"'}, content=changed)

    client, seen = storage_client(storage)
    with client:
        (path,) = client.download(one_output(), tmp_path)
    assert path.read_bytes() == changed and len(seen) == 3


# --- permissions ---------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    client, _ = storage_client(serve())
    previous = os.umask(umask)
    try:
        with client:
            (path,) = client.download(one_output(), tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode


# --- results in memory ---------------------------------------------------------------------------


def test_read_output_reads_the_only_output(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x"})
    data = client.read_output(task.wait())
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.read_output(task.id) == data  # a task id fetches the result itself
    with client.open_output(task) as stream:
        assert stream.read() == data


def test_several_outputs_need_a_key_and_the_error_lists_them(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    result = client.run("multi-output", {"prompt": "x"}).wait()
    with pytest.raises(DownloadError, match=r"3 outputs .*'9\.images\.0'.*pass key="):
        client.read_output(result)
    with pytest.raises(DownloadError, match="no output 'nope'"):
        client.open_output(result, "nope")
    first = client.read_output(result, "9.images.1")
    with client.open_output(result, "9.images.1") as stream:
        assert stream.read(5) + stream.read() == first


def test_read_output_refuses_more_than_max_bytes(tmp_path: Path) -> None:
    client, _ = storage_client(serve())
    with client:
        assert client.read_output(one_output(), max_bytes=len(CONTENT)) == CONTENT
        assert client.read_output(one_output(), max_bytes=None) == CONTENT
        with pytest.raises(DownloadError, match="larger than max_bytes=100"):
            client.read_output(one_output(), max_bytes=100)


def test_reading_an_unfinished_or_failed_task_is_refused() -> None:
    client, seen = storage_client(serve())
    with client:
        with pytest.raises(DownloadError, match="is running"):
            client.read_output(result_with("running"))
        with pytest.raises(TaskFailed, match="boom"):
            client.open_output(result_with("failed", task_error="boom"))
    assert seen == []


def test_a_stream_resumes_a_broken_transfer_where_it_was() -> None:
    def storage(request: Request, n: int) -> Response:
        if n == 1:
            headers = {"Content-Length": str(len(CONTENT)), "ETag": '"v1"'}
            return Response(200, headers, stream=cut_after(CONTENT, 3000))
        assert request.headers.get("Range") == "bytes=3000-"
        assert request.headers.get("If-Range") == '"v1"'
        if n == 2:  # no range support: the whole object again, the same one
            return Response(200, {"ETag": '"v1"'}, content=CONTENT)
        pytest.fail("one resume was enough")

    client, _ = storage_client(storage)
    with client, client.open_output(one_output()) as stream:
        assert stream.read() == CONTENT


def test_a_stream_whose_object_changes_is_an_error_not_a_splice() -> None:
    def storage(request: Request, n: int) -> Response:
        if n == 1:
            headers = {"Content-Length": str(len(CONTENT)), "ETag": '"v1"'}
            return Response(200, headers, stream=cut_after(CONTENT, 3000))
        return Response(200, {"ETag": '"v2"'}, content=bytes(reversed(CONTENT)))

    client, _ = storage_client(storage)
    with client, client.open_output(one_output()) as stream:
        assert stream.read(3000) == CONTENT[:3000]
        with pytest.raises(DownloadError, match="changed on storage"):
            stream.read()


def test_an_expired_link_is_refreshed_for_a_stream(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x"})
    task.wait()
    server.inject("expire_urls", route="result", seconds=0)
    stale = client.get_result(task.id)
    assert stale.is_expired(margin=30)
    server.clear_logs()
    with client.open_output(stale) as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    assert routes(server, "result") == 1  # fresh links fetched once, before reading


# --- several files at a time --------------------------------------------------------------------


def many_outputs(count: int) -> TaskResult:
    urls = {f"9.images.{i}": f"https://storage.example/b/{i}.png?sig" for i in range(count)}
    return result_with(download_urls=urls)


class InFlight:
    """Storage that counts requests in flight, holding each body back a moment."""

    def __init__(self, fail: str = "") -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.fail = fail

    def __call__(self, request: Request, n: int) -> Response:
        def body() -> Iterator[bytes]:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.05)
                if self.fail and self.fail in request.url:
                    raise ReadError("connection reset by peer")
                yield request.url.encode()
            finally:
                with self.lock:
                    self.now -= 1

        return Response(200, {}, stream=body())


@pytest.mark.parametrize(("limit", "most"), [(1, 1), (3, 3), (4, 4)])
def test_several_outputs_are_fetched_at_most_max_concurrency_at_a_time(
    tmp_path: Path, limit: int, most: int
) -> None:
    storage = InFlight()
    client, seen = storage_client(storage)
    with client:
        paths = client.download(many_outputs(8), tmp_path, max_concurrency=limit)
    assert storage.most == most and len(seen) == 8
    assert [p.name for p in paths] == [f"9.images.{i}.png" for i in range(8)]  # result order
    assert all(p.read_bytes().decode().endswith(f"/{i}.png?sig") for i, p in enumerate(paths))


def test_a_failure_among_concurrent_files_stops_the_rest_and_leaves_nothing_partial(
    tmp_path: Path,
) -> None:
    storage = InFlight(fail="/3.png")
    client, _ = storage_client(storage)
    with client, pytest.raises(DownloadError, match=r"9\.images\.3"):
        client.download(many_outputs(8), tmp_path, max_concurrency=4)
    left = [p.name for p in tmp_path.iterdir()]
    assert not any(is_temp_name(name) for name in left)
    assert "9.images.3.png" not in left
    for name in left:  # what remains is complete
        assert (tmp_path / name).read_bytes().endswith(b".png?sig")


def test_max_concurrency_is_checked() -> None:
    client, _ = storage_client(serve())
    with client, pytest.raises(cyberun.ConfigurationError, match="max_concurrency"):
        client.download(many_outputs(2), "never", max_concurrency=0)


@pytest.mark.parametrize("limit", [1, 4])
def test_progress_is_reported_per_file_and_in_total(tmp_path: Path, limit: int) -> None:
    sizes = {i: 1000 * (i + 1) for i in range(5)}

    def storage(request: Request, n: int) -> Response:
        index = int(request.url.rsplit("/", 1)[1].split(".")[0])
        data = b"x" * sizes[index]
        return Response(200, {"Content-Length": str(len(data))}, content=data)

    per_file: Dict[str, int] = {}
    totals: List[Tuple[int, Any]] = []
    lock = threading.Lock()

    def on_file(name: str, done: int, total: Any) -> None:
        with lock:
            per_file[name] = done

    def on_total(done: int, total: Any) -> None:
        with lock:
            totals.append((done, total))

    client, _ = storage_client(storage)
    with client:
        client.download(
            many_outputs(5),
            tmp_path,
            max_concurrency=limit,
            on_progress=on_file,
            on_total_progress=on_total,
        )
    assert per_file == {f"9.images.{i}.png": sizes[i] for i in range(5)}
    assert totals[-1] == (sum(sizes.values()), sum(sizes.values()))
    assert all(total is None or total == sum(sizes.values()) for _, total in totals)
