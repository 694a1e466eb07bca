"""The emulator as a server: webhooks, concurrency, clean shutdown, the command, the fixture."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
from localhttp import LocalServer, QuietHandler
from rawhttp import Emu, request, stream

from cyberun.sse import iter_events
from cyberun.testing import CyberunEmulator, ManualClock


class Receiver:
    """A webhook receiver: records every POST, fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: List[Dict[str, Any]] = []
        self.failures = failures
        receiver = self

        class Handle(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"body": body, "headers": dict(self.headers)})
                status = 500 if len(receiver.calls) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.local = LocalServer(Handle)
        self.url = self.local.url + "/hooks/cyberun"

    def close(self) -> None:
        self.local.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_webhook_management_crud_and_rotation() -> None:
    with CyberunEmulator() as server:
        api = Emu(server, server.device_key)
        created = api.create_webhook("https://example.com/h", ["task.completed"], "ci")
        assert created.status == 201
        hook = created.json()
        assert hook["webhook_secret"].startswith("whsec_")
        got = api.call("GET", f"/api/v1/webhooks/{hook['id']}").json()
        assert "webhook_secret" not in got and got["webhook_url"] == "https://example.com/h"
        assert [h["id"] for h in api.call("GET", "/api/v1/webhooks").json()["webhook_list"]] == [
            hook["id"]
        ]
        updated = api.call(
            "PUT", f"/api/v1/webhooks/{hook['id']}", {"webhook_events": ["task.failed"]}
        ).json()
        assert updated["webhook_events"] == ["task.failed"]
        rotated = api.call("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret").json()
        assert (
            rotated["webhook_secret"].startswith("whsec_")
            and rotated["webhook_secret"] != hook["webhook_secret"]
        )
        bad = api.create_webhook("http://example.com", ["task.completed"])
        assert bad.status == 400 and "https" in bad.json()["error"]["message"]
        assert api.call("DELETE", f"/api/v1/webhooks/{hook['id']}").status == 200
        assert api.call("GET", f"/api/v1/webhooks/{hook['id']}").status == 404


def test_signed_deliveries_are_retried_on_the_documented_schedule(receiver: Receiver) -> None:
    with CyberunEmulator(clock=ManualClock()) as server:
        jwt = Emu(server, server.jwt)
        hook = jwt.create_webhook(
            receiver.url, ["task.completed", "task.failed"], headers={"X-Team-ID": server.team_id}
        ).json()
        task_id = Emu(server).run()
        server.advance(10)  # completes; first attempt and the immediate retry both fail
        wait_until(lambda: len(server.webhook_deliveries) >= 2)
        time.sleep(0.1)
        assert len(receiver.calls) == 2
        server.advance(5)  # the third attempt, 5 s later, succeeds
        wait_until(lambda: len(receiver.calls) == 3)
        server.advance(500)
        time.sleep(0.2)
        assert len(receiver.calls) == 3  # no more after a success
    deliveries = server.webhook_deliveries
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert [d.ok for d in deliveries] == [False, False, True]
    call = receiver.calls[-1]
    body = call["body"]
    expected = (
        "sha256=" + hmac.new(hook["webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
    )
    assert call["headers"]["X-Webhook-Signature-256"] == expected
    assert call["headers"]["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {
        "event_type",
        "task_id",
        "task_status",
        "task_output",
        "task_error",
        "timestamp",
    }
    assert (payload["event_type"], payload["task_id"], payload["task_status"]) == (
        "task.completed",
        task_id,
        "completed",
    )


def test_failed_tasks_are_delivered_and_cancelled_ones_are_not(receiver: Receiver) -> None:
    receiver.failures = 0
    with CyberunEmulator(clock=ManualClock()) as server:
        api = Emu(server, server.device_key)
        api.create_webhook(receiver.url, ["task.failed"])
        failing = Emu(server).run("always-fails")
        done = Emu(server).run()
        cancelled = Emu(server).run("slow-render")
        Emu(server).call("POST", f"/tasks/{cancelled}/cancel")
        server.advance(60)
        wait_until(lambda: len(receiver.calls) == 1)
        time.sleep(0.2)
    assert len(receiver.calls) == 1
    payload = json.loads(receiver.calls[0]["body"])
    assert payload["task_id"] == failing and payload["event_type"] == "task.failed"
    assert "CUDA" in payload["task_error"] and payload["task_output"] is None
    assert done != failing


def test_two_hundred_concurrent_streams() -> None:
    with CyberunEmulator(time_scale=0.01) as server:
        api = Emu(server)
        task_ids = [server.create_task("text-to-image", {"prompt": str(i)}) for i in range(200)]
        results: Dict[str, List[str]] = {}
        errors: List[BaseException] = []
        start = threading.Barrier(200)

        def follow(task_id: str) -> None:
            try:
                start.wait()
                _, _, chunks = stream(
                    api.url(f"/tasks/{task_id}/events"), headers=api.headers(), timeout=30
                )
                results[task_id] = [e.event for e in iter_events(chunks)]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=follow, args=(t,)) for t in task_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    assert len(results) == 200
    assert all(events[-1] == "completed" for events in results.values())


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_stop_leaks_no_threads_and_no_sockets() -> None:
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    for _ in range(3):
        with CyberunEmulator(time_scale=0.01, keepalive_interval=0.01) as server:
            api = Emu(server)
            task_id = api.run("slow-render")
            _, _, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers())
            next(iter(chunks))  # a stream is open and waiting when the server stops
            api.call("POST", "/api/v1/webhooks", headers={"X-Team-ID": server.team_id})
        del chunks
    time.sleep(0.1)
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leaked == []
    assert _open_fds() <= fds_before + 1


@pytest.mark.usefixtures("interruptible_children")
def test_serve_command_prints_the_base_url_and_a_key() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cyberun.testing",
            "serve",
            "--port",
            "0",
            "--api-key",
            "sk-cmd-test",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Cyberun emulator listening on http://127.0.0.1:")
        base_url = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline() for _ in range(2)]
        assert f"CYBERUN_BASE_URL={base_url}" in lines[0]
        assert "CYBERUN_API_KEY=sk-cmd-test" in lines[1]
        answer = request(
            base_url + "/api/v1/r/workflows", headers={"Authorization": "Bearer sk-cmd-test"}
        )
        assert answer.status == 200
        process.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0 and "stopped" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_pytest_fixture_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from rawhttp_copy import ok

        def test_it(cyberun_server):
            assert cyberun_server.base_url.startswith("http://127.0.0.1:")
            assert ok(cyberun_server)
        """
    )
    pytester.makepyfile(
        rawhttp_copy="""
        import http.client, urllib.parse
        def ok(server):
            parts = urllib.parse.urlsplit(server.base_url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port)
            auth = {"Authorization": "Bearer " + server.api_key}
            conn.request("GET", "/api/v1/r/tasks", headers=auth)
            return conn.getresponse().status == 200
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
