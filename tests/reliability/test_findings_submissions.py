"""Issue 19, submissions: never a second billed task by surprise, and a refusal slows down.

A POST that starts a task is retried only when it provably was not accepted;
once it may have been, the caller gets ``SubmissionUncertain`` and
``find_submitted`` finds the task. Every finding runs on every transport,
against the emulator behind a proxy of the test's that spoils chosen answers
after the emulator has acted (the task exists, its answer is cut), or against
loopback servers written here.
"""

from __future__ import annotations

import json
import ssl
import time
from datetime import datetime, timedelta, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from rawserver import Blackhole, CuttingProxy, RawRequest, RawServer
from recorder import TASK, Recorder, Seen

import cyberun
from cyberun.testing import CyberunEmulator
from cyberun.transports import MockTransport, Request, Response


@pytest.fixture(scope="module")
def emulator() -> Iterator[CyberunEmulator]:
    # Real time: find_submitted compares the tasks' created_at with this
    # machine's clock, as it does against the real API.
    with CyberunEmulator(time_scale=1.0) as server:
        yield server


def runs(server: CyberunEmulator) -> int:
    return sum(1 for r in server.requests if r.route == "run")


def client_for(url: str, transport: object, key: str, **options: object) -> cyberun.Client:
    settings: Dict[str, object] = {
        "retry": cyberun.RetryPolicy(backoff=0.0),
        "timeout": cyberun.Timeout(5, 0.5),
    }
    settings.update(options)
    return cyberun.Client(key, base_url=url, transport=transport, **settings)  # type: ignore[arg-type]


# --- an answer that does not arrive whole after the POST was read -----------------------------


@pytest.mark.parametrize("spoil", ["cut", "stall", "reset"])
def test_a_run_whose_answer_is_lost_after_the_post_was_read_is_uncertain_and_found(
    transport: str, emulator: CyberunEmulator, spoil: str
) -> None:
    def plan(request: RawRequest) -> str:
        return spoil if request.target.endswith("/run") else "pass"

    before = runs(emulator)
    with CuttingProxy(emulator.base_url, plan) as proxy:
        client = client_for(proxy.url, transport, emulator.api_key)
        with pytest.raises(cyberun.SubmissionUncertain) as info:
            client.run("text-to-image", {"prompt": "only once"})
        error = info.value
        assert not isinstance(
            error, cyberun.TransportError
        )  # the Celery example's retry misses it
        assert runs(emulator) == before + 1  # sent once, never again
        ((_, status, body),) = [a for a in proxy.answers if a[0].target.endswith("/run")]
        assert status == 202  # the emulator started the task; only its answer was lost
        found = client.find_submitted(error)
        client.close()
    assert json.loads(body)["task_id"] in [task.id for task in found]
    assert error.workflow == "text-to-image"
    assert abs((error.submitted_at - datetime.now(timezone.utc)).total_seconds()) < 60


@pytest.mark.parametrize(("fault", "params"), [("reset", {}), ("status", {"status": 502})])
def test_the_emulator_accepting_a_run_and_cutting_its_answer_is_one_task_found(
    transport: str, emulator: CyberunEmulator, fault: str, params: Dict[str, int]
) -> None:
    before = runs(emulator)
    emulator.inject(fault, route="run", after_accept=True, **params)
    client = client_for(emulator.base_url, transport, emulator.api_key)
    with pytest.raises(cyberun.SubmissionUncertain) as info:
        client.run("text-to-image", {"prompt": "cut after accept"})
    assert runs(emulator) == before + 1
    found = client.find_submitted(info.value, skew=60)
    workflow_id = client.get_workflow("text-to-image").id
    client.close()
    assert found and {task.workflow_id for task in found} == {workflow_id}


# --- provably not sent: retried, then the precise error ---------------------------------------


def test_a_certificate_failure_on_run_is_a_tls_error_and_nothing_was_sent(
    transport: str, tmp_path: Path
) -> None:
    trustme = pytest.importorskip("trustme")
    untrusted = trustme.CA()  # the client trusts the system store, not this CA
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    untrusted.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    sleeps: List[float] = []
    with Recorder(wrap_socket=lambda sock: context.wrap_socket(sock, server_side=True)) as api:
        url = f"https://localhost:{api.port}"
        policy = cyberun.RetryPolicy(sleep=sleeps.append)
        client = client_for(url, transport, "sk-test-0123456789", retry=policy)
        with client, pytest.raises(cyberun.TLSError):
            client.run("text-to-image", {"prompt": "x"}, validate=False)
        assert api.seen == []  # the server never got a request
    assert sleeps == []  # a certificate that fails verification is not tried again


@pytest.mark.parametrize("scheme", ["socks5", "socks4"])
def test_an_unsupported_proxy_scheme_is_refused_before_anything_is_sent(
    transport: str, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    if transport == "requests" and find_spec("socks") is not None:  # pragma: no cover
        pytest.skip("PySocks is installed: requests can use SOCKS proxies")
    with RawServer(lambda conn, request: None, host="127.0.0.2") as listener:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"{scheme}://127.0.0.2:{listener.port}")
        monkeypatch.setenv("https_proxy", f"{scheme}://127.0.0.2:{listener.port}")
        client = client_for("https://api.cyberun.invalid", transport, "sk-test-0123456789")
        with pytest.raises(cyberun.ConnectError, match=f"{scheme}://") as info:
            client.run("text-to-image", {"prompt": "x"}, validate=False)
        client.close()
        time.sleep(0.1)
        assert listener.connections == 0
    assert "nothing was sent" in str(info.value)


def test_the_standard_library_transport_refuses_an_https_proxy_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with RawServer(lambda conn, request: None, host="127.0.0.2") as listener:
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.2:{listener.port}")
        client = client_for("https://api.cyberun.invalid", "urllib", "sk-test-0123456789")
        with pytest.raises(cyberun.ConnectError, match="https://"):
            client.run("text-to-image", {"prompt": "x"}, validate=False)
        client.close()
        assert listener.connections == 0


def test_a_run_that_cannot_connect_is_retried_and_ends_as_a_connect_timeout(
    transport: str,
) -> None:
    sleeps: List[float] = []
    with Blackhole() as hole:
        policy = cyberun.RetryPolicy(attempts=2, sleep=sleeps.append)
        client = client_for(hole.url, transport, "sk-test-0123456789", retry=policy)
        client = client.with_options(timeout=cyberun.Timeout(0.2, 5))
        with pytest.raises(cyberun.ConnectTimeoutError):
            client.run("text-to-image", {"prompt": "x"}, validate=False)
        client.close()
    assert len(sleeps) == 1  # the one retry the policy allows


# --- a refusal slows submissions down ---------------------------------------------------------


def _refusing(status: int, times: int, retry_after: str) -> Tuple[Recorder, List[Seen]]:
    posts: List[Seen] = []

    def answer(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        posts.append(seen)
        if len(posts) <= times:
            headers = {"Content-Type": "application/json"}
            if retry_after:
                headers["Retry-After"] = retry_after
            return status, headers, b'{"error": "slow down"}'
        return 202, {"Content-Type": "application/json"}, b'{"task_id": "%s"}' % TASK.encode()

    return Recorder(answer), posts


@pytest.mark.parametrize(("status", "retry_after"), [(429, "2"), (429, ""), (503, "2")])
def test_a_refused_run_is_slowed_down_not_failed(
    transport: str, status: int, retry_after: str
) -> None:
    sleeps: List[float] = []
    api, posts = _refusing(status, 2, retry_after)
    with api:
        policy = cyberun.RetryPolicy(sleep=sleeps.append, random=lambda: 0.5)
        with client_for(api.url, transport, "sk-test-0123456789", retry=policy) as client:
            assert client.run("text-to-image", {"prompt": "x"}, validate=False).id == TASK
    assert len(posts) == 3
    assert sleeps == ([2.0, 2.0] if retry_after else [0.25, 0.5])


def test_a_run_still_refused_when_the_attempts_run_out_is_rate_limited(transport: str) -> None:
    api, posts = _refusing(429, 99, "1")
    with api:
        policy = cyberun.RetryPolicy(attempts=3, sleep=lambda seconds: None)
        client = client_for(api.url, transport, "sk-test-0123456789", retry=policy)
        with client, pytest.raises(cyberun.RateLimited) as info:
            client.run("text-to-image", {"prompt": "x"}, validate=False)
    assert len(posts) == 3 and info.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_run_answered_by_a_failing_server_is_uncertain(transport: str, status: int) -> None:
    api, posts = _refusing(status, 99, "")
    client = client_for(api.url, transport, "sk-test-0123456789")
    with api, client, pytest.raises(cyberun.SubmissionUncertain):
        client.run("text-to-image", {"prompt": "x"}, validate=False)
    assert len(posts) == 1


def test_a_503_without_retry_after_on_run_is_a_server_error_sent_once(transport: str) -> None:
    api, posts = _refusing(503, 99, "")
    client = client_for(api.url, transport, "sk-test-0123456789")
    with api, client, pytest.raises(cyberun.ServerError) as info:
        client.run("text-to-image", {"prompt": "x"}, validate=False)
    assert len(posts) == 1 and not isinstance(info.value, cyberun.SubmissionUncertain)


# --- find_submitted ---------------------------------------------------------------------------


def test_find_submitted_resolves_the_slug_and_keeps_to_the_window(
    emulator: CyberunEmulator,
) -> None:
    client = cyberun.Client(emulator.api_key, base_url=emulator.base_url)
    mine = client.run("text-to-image", {"prompt": "mine"})
    client.run("multi-output", {"prompt": "another workflow"})
    now = datetime.now(timezone.utc)
    lost = cyberun.SubmissionUncertain("lost", workflow="text-to-image", submitted_at=now)
    found = client.find_submitted(lost)
    assert mine.id in [task.id for task in found]
    assert all(task.workflow_id == found[0].workflow_id for task in found)
    workflow = client.get_workflow("text-to-image")
    assert {task.workflow_id for task in found} == {workflow.id}
    by_id = cyberun.SubmissionUncertain("lost", workflow=workflow.id, submitted_at=now)
    assert [t.id for t in client.find_submitted(by_id)] == [t.id for t in found]
    long_ago = cyberun.SubmissionUncertain(
        "lost", workflow="text-to-image", submitted_at=now - timedelta(hours=2)
    )
    assert client.find_submitted(long_ago) == []
    assert mine.id in [t.id for t in client.find_submitted(long_ago, skew=3 * 3600)]
    with pytest.raises(ValueError, match="SubmissionUncertain"):
        client.find_submitted(cyberun.SubmissionUncertain("no context"))
    client.close()


def _listing(pages: List[List[Tuple[str, str]]], seen: List[int]) -> MockTransport:
    """A task list server: pages of (id, created_at); every task of workflow w1."""
    import json

    total = 100 * (len(pages) - 1) + len(pages[-1])  # as if every page but the last were full

    def handler(request: Request) -> Response:
        if "/workflows/" in request.url:
            return Response(200, content=b'{"id": "w1", "workflow_slug": "s"}')
        page = int(request.url.split("current_page=")[1].split("&")[0])
        seen.append(page)
        items = [
            {"id": task_id, "workflow_id": "w1", "task_status": "running", "created_at": at}
            for task_id, at in pages[page - 1]
        ]
        body = {
            "task_list": items,
            "page_meta": {"current_page": page, "per_page": 100, "total_count": total},
        }
        return Response(200, content=json.dumps(body).encode())

    return MockTransport(handler)


def test_find_submitted_stops_early_on_an_ordered_list_and_reads_all_of_an_unordered_one() -> None:
    when = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

    def at(minutes: int) -> str:
        return (when + timedelta(minutes=minutes)).isoformat()

    newest_first = [
        [(f"n{i}", at(-i)) for i in range(100)],
        [(f"o{i}", at(-200 - i)) for i in range(100)],
    ]
    newest_first += [[("never", at(-500))]]
    seen: List[int] = []
    client = cyberun.Client("sk-x", transport=_listing(newest_first, seen))
    lost = cyberun.SubmissionUncertain("x", workflow="s", submitted_at=when)
    found = client.find_submitted(lost, skew=120)
    assert [t.id for t in found] == ["n0", "n1", "n2"]
    assert seen == [1, 2]  # page 2 is wholly older than the window: page 3 is never read

    shuffled = [[("a", at(-300)), ("b", at(1))], [("c", at(-400))], [("late", at(-1))]]
    seen.clear()
    client = cyberun.Client("sk-x", transport=_listing(shuffled, seen))
    assert {t.id for t in client.find_submitted(lost, skew=120)} == {"b", "late"}
    assert seen == [1, 2, 3]
