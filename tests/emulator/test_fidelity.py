"""The emulator as the documentation describes the server: clocks, framing, faults, storage.

Observed over http.client; the SDK appears only where its behaviour against
the emulator is the point (``TaskResult.is_expired``).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple
from urllib.parse import urlsplit

import pytest
from rawhttp import Answer, Emu, request

import cyberun
from cyberun.testing import FAULT_ROUTES, FAULTS, ROUTES, CyberunEmulator, ManualClock

from .wire import events, open_stream, read_all


@pytest.fixture
def manual() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock()) as emulator:
        yield emulator


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


# --- time ------------------------------------------------------------------------------


def test_timestamps_are_wall_clock_under_a_time_scale() -> None:
    with CyberunEmulator(time_scale=0.01) as server:
        api = Emu(server)
        before = datetime.now(timezone.utc)
        task_id = api.run(parameters={"prompt": "x", "steps": 3})
        found = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
        after = datetime.now(timezone.utc)
        task = api.call("GET", f"/tasks/{task_id}").json()
    # Every timestamp lies between the moments the test saw (plus clock rounding).
    stamps = [parse_time(e.json()["timestamp"]) for e in found]
    stamps += [parse_time(task[k]) for k in ("created_at", "started_at", "completed_at")]
    for stamp in stamps:
        assert before.replace(microsecond=0) <= stamp.replace(microsecond=0)
        assert (stamp - after).total_seconds() < 0.01
    assert stamps[: len(found)] == sorted(stamps[: len(found)])


def test_expires_at_is_issue_time_plus_the_scaled_ttl_and_the_link_dies_then() -> None:
    # 150 emulated seconds at time_scale 0.01: the link lives 1.5 real seconds.
    with CyberunEmulator(time_scale=0.01, url_ttl=150) as server:
        api = Emu(server)
        task_id = api.run(parameters={"prompt": "x", "steps": 1})
        read_all(api.url(f"/tasks/{task_id}/events"), api.headers())
        before = datetime.now(timezone.utc)
        answer = api.call("GET", f"/tasks/{task_id}/result").json()
        after = datetime.now(timezone.utc)
        expires = parse_time(answer["expires_at"])
        # Issued between `before` and `after`, valid 1.5 s (milliseconds in the text).
        assert (expires - before).total_seconds() >= 1.5 - 0.001
        assert (expires - after).total_seconds() <= 1.5
        assert request(answer["download_url"]).status == 200
        query = dict(p.split("=", 1) for p in urlsplit(answer["download_url"]).query.split("&"))
        assert query["X-Amz-Expires"] == "2"  # real seconds, rounded up, as S3 writes them
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            before = datetime.now(timezone.utc)
            result = client.get_result(task_id)
            after = datetime.now(timezone.utc)
            assert result.expires_at is not None
            assert (result.expires_at - before).total_seconds() >= 1.5 - 0.001
            assert (result.expires_at - after).total_seconds() <= 1.5
            assert not result.is_expired(before) and result.is_expired(
                after + timedelta(seconds=1.5)
            )
            while datetime.now(timezone.utc) <= expires:
                time.sleep(0.05)
        died = request(answer["download_url"])  # the first link, past its expires_at
    assert died.status == 403 and b"expired" in died.body


# --- framing ---------------------------------------------------------------------------


def test_an_http10_client_gets_a_close_delimited_stream(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run(parameters={"prompt": "x", "steps": 2})
    manual.advance(100)
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers(), http10=True)
    try:
        headers = {k.lower(): v for k, v in response.getheaders()}
        body = response.read()
    finally:
        conn.close()
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert headers["connection"] == "close"
    assert b"\r\n0\r\n" not in body and [e.event for e in events(body)] == ["completed"]


def test_http11_streams_stay_chunked(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run()
    manual.advance(100)
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        assert response.getheader("Transfer-Encoding") == "chunked"
        response.read()
    finally:
        conn.close()


# --- faults: applied on every route they name, or refused ---------------------------------


class Routes:
    """One raw request per route, against a finished task and a fresh upload target."""

    def __init__(self, server: CyberunEmulator) -> None:
        self.api = Emu(server)
        self.server = server
        self.task_id = self.api.run(parameters={"prompt": "x", "steps": 1})
        server.advance(100)
        result = self.api.call("GET", f"/tasks/{self.task_id}/result").json()
        self.download = result["download_url"]
        self.workflow_id = self.api.call("GET", "/workflows/slug/text-to-image").json()["id"]

    def call(self, route: str) -> Answer:
        api, task = self.api, self.task_id
        if route == "upload":
            target = api.presign("a.bin", 4, "application/octet-stream").json()
            return request(target["upload_url"], "PUT", headers=target["upload_headers"],
                           body=b"data")  # fmt: skip
        if route == "download":
            return request(self.download)
        method, path, body = {
            "run": ("POST", "/workflows/slug/text-to-image/run", {"parameters": {"prompt": "x"}}),
            "tasks": ("GET", "/tasks", None),
            "task": ("GET", f"/tasks/{task}", None),
            "cancel": ("POST", f"/tasks/{task}/cancel", None),
            "result": ("GET", f"/tasks/{task}/result", None),
            "events": ("GET", f"/tasks/{task}/events", None),
            "workflows": ("GET", "/workflows", None),
            "workflow": ("GET", f"/workflows/{self.workflow_id}", None),
            "presign": ("POST", "/files/presign",
                        {"file_name": "a", "file_size": 1, "content_type": "text/plain"}),
            "webhooks": ("GET", "/api/v1/webhooks", None),
        }[route]  # fmt: skip
        headers = {"Authorization": f"Bearer {self.server.device_key}"}
        return request(api.url(path), method, headers=headers, json_body=body)


@pytest.mark.parametrize("route", ROUTES)
def test_a_status_fault_is_applied_on_every_route(manual: CyberunEmulator, route: str) -> None:
    routes = Routes(manual)
    manual.inject("status", route=route, status=418, retry_after=7)
    answer = routes.call(route)
    assert (answer.status, answer.headers.get("retry-after")) == (418, "7")
    assert routes.call(route).status < 400  # used up


@pytest.mark.parametrize("route", ROUTES)
def test_a_reset_fault_is_applied_on_every_route(manual: CyberunEmulator, route: str) -> None:
    routes = Routes(manual)
    manual.inject("reset", route=route)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        routes.call(route)
    assert routes.call(route).status < 400


@pytest.mark.parametrize("route", ["upload", "download", "run", "events"])
def test_a_latency_fault_waits_at_least_its_seconds(manual: CyberunEmulator, route: str) -> None:
    routes = Routes(manual)
    manual.inject("latency", route=route, seconds=0.3)
    started = time.monotonic()
    assert routes.call(route).status < 400
    assert time.monotonic() - started >= 0.3


def test_a_reset_mid_upload_stores_nothing_and_a_retry_succeeds(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    target = api.presign("big.bin", 200_000, "application/octet-stream").json()
    manual.inject("reset", route="upload", after_bytes=50_000)
    body = bytes(range(256)) * 781 + b"\x00" * 64
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        request(target["upload_url"], "PUT", headers=target["upload_headers"], body=body)
    answer = request(target["upload_url"], "PUT", headers=target["upload_headers"], body=body)
    assert answer.status == 200
    assert answer.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'


@pytest.mark.parametrize(
    ("fault", "route", "params", "message"),
    [
        ("truncate", "upload", {}, "applies to route 'download', not 'upload'"),
        ("slow_drip", "upload", {}, "not 'upload'"),
        ("drop", "result", {"after_events": 1}, "applies to route 'events'"),
        ("expire_urls", "download", {}, "applies to route 'result'"),
        ("stall", "task", {}, "not 'task'"),
        ("status", None, {"code": 500}, "no parameter code"),
        ("drop", "events", {}, "after_bytes=N or after_events=N"),
        ("reset", "task", {"after_bytes": 10}, "routes with a body to cut"),
        ("latency", None, {"seconds": -1}, "seconds must be"),
        ("meteor", None, {}, "unknown fault 'meteor'"),
        ("status", "nowhere", {}, "unknown route 'nowhere'"),
    ],
)
def test_a_fault_that_would_never_apply_is_refused_in_one_line(
    manual: CyberunEmulator, fault: str, route: Any, params: Dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        manual.inject(fault, route=route, **params)
    assert "\n" not in str(caught.value)
    assert manual.faults.active() == []


def test_every_fault_names_its_routes() -> None:
    assert set(FAULT_ROUTES) == set(FAULTS)
    for fault, routes in FAULT_ROUTES.items():
        assert set(routes) <= set(ROUTES)
        described = FAULTS[fault].split(":")[0]
        assert described == "any route" or set(described.split(", ")) == set(routes), fault


# --- storage ---------------------------------------------------------------------------


def upload(api: Emu, body: bytes) -> Tuple[str, Answer]:
    target = api.presign("photos.zip", len(body), "application/zip").json()
    answer = request(target["upload_url"], "PUT", headers=target["upload_headers"], body=body)
    return target["file_key"], answer


def test_uploads_can_be_spooled_to_disk(tmp_path: Path) -> None:
    body = b"PK" + bytes(3 * 1024 * 1024)
    with CyberunEmulator(clock=ManualClock(), uploads="disk", upload_dir=tmp_path) as server:
        api = Emu(server)
        key, answer = upload(api, body)
        assert answer.status == 200
        (spooled,) = list(tmp_path.iterdir())
        assert spooled.read_bytes() == body
        assert api.run("gaussian-splat", {"images": key})


def test_uploads_can_be_discarded_keeping_their_size_and_checksum() -> None:
    body = bytes(range(256)) * 40_000  # 10 MB
    with CyberunEmulator(clock=ManualClock(), uploads="discard") as server:
        api = Emu(server)
        key, answer = upload(api, body)
        assert answer.status == 200
        assert answer.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert api.run("gaussian-splat", {"images": key})
        _, again = upload(api, body)  # another key: accepted again
        assert again.status == 200


def test_a_spool_folder_the_emulator_made_is_removed_at_stop() -> None:
    with CyberunEmulator(clock=ManualClock(), uploads="disk") as server:
        upload(Emu(server), b"abc")
        folder = server.world._upload_dir
        assert folder is not None and any(folder.iterdir())
    assert not folder.exists()


def test_uploaded_inputs_expire_after_the_documented_retention(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    key, _ = upload(api, b"zip bytes")
    manual.advance(86_400 - 1)
    assert api.run("gaussian-splat", {"images": key})
    manual.advance(2)  # a day and a second after the upload
    refused = api.call(
        "POST", "/workflows/slug/gaussian-splat/run", {"parameters": {"images": key}}
    )
    assert refused.status == 400 and "kept 1 day" in refused.json()["error"]["message"]


def test_input_retention_is_in_emulated_seconds() -> None:
    with CyberunEmulator(time_scale=0.001, input_retention=100) as server:
        api = Emu(server)
        key, _ = upload(api, b"zip")
        time.sleep(0.15)  # 150 emulated seconds
        refused = api.call(
            "POST", "/workflows/slug/gaussian-splat/run", {"parameters": {"images": key}}
        )
    assert refused.status == 400


# --- listing order ---------------------------------------------------------------------


def test_the_listing_can_come_in_an_unspecified_order() -> None:
    with CyberunEmulator(clock=ManualClock(), list_order="unspecified") as server:
        api = Emu(server)
        created = []
        for _ in range(8):
            created.append(api.run())
            server.advance(1)
        pages = [
            api.call("GET", f"/tasks?per_page=3&current_page={n}").json()["task_list"]
            for n in (1, 2, 3)
        ]
    listed = [t["id"] for page in pages for t in page]
    assert sorted(listed) == sorted(created)  # every task once across the pages
    assert listed != created[::-1]  # not newest first


def test_the_default_listing_is_newest_first(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    created = []
    for _ in range(4):
        created.append(api.run())
        manual.advance(1)
    listed = [t["id"] for t in api.call("GET", "/tasks").json()["task_list"]]
    assert listed == created[::-1]


# --- clear errors ----------------------------------------------------------------------


def test_a_busy_port_is_one_line_saying_what_to_do() -> None:
    with CyberunEmulator() as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use") as caught:
            CyberunEmulator(port=port).start()
    message = str(caught.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message and "port=0" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_serve_command_on_a_busy_port_prints_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "cyberun.testing", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "in use" in line and "--port 0" in line and str(port) in line


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"time_scale": 0}, "time_scale must be positive"),
        ({"time_scale": "fast"}, "time_scale must be a number"),
        ({"uploads": "tape"}, "uploads must be one of 'memory', 'disk', 'discard'"),
        ({"list_order": "oldest"}, "list_order must be one of"),
        ({"sse_framing": "gzip"}, "sse_framing must be one of"),
        ({"sse_history": "some"}, "sse_history must be one of"),
        ({"upload_dir": "/tmp/x"}, 'upload_dir needs uploads="disk"'),
        ({"keepalive_interval": 0}, "keepalive_interval must be"),
        ({"url_ttl": -1}, "url_ttl must be"),
    ],
)
def test_bad_options_are_one_line(options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        CyberunEmulator(**options)
    assert "\n" not in str(caught.value)


def test_a_bad_add_workflow_option_is_one_line(manual: CyberunEmulator) -> None:
    with pytest.raises(ValueError, match="tool_type must be one of 'comfyui', 'nerfstudio'"):
        manual.add_workflow("x", tool_type="blender")


def test_the_request_log_keeps_the_run_body(manual: CyberunEmulator) -> None:
    task_id = Emu(manual).run(parameters={"prompt": "a heron", "steps": 3})
    (run,) = [r for r in manual.requests if r.route == "run"]
    assert run.task_id == task_id and run.body is not None
    assert b'"a heron"' in run.body
    assert manual.task_parameters(task_id) == {"prompt": "a heron", "steps": 3}
