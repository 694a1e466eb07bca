"""The endpoint layer end to end: every endpoint against the emulator, on every transport."""

from __future__ import annotations

import io
from typing import Iterator

import pytest
from idmodes import IDS, SSE_IDS
from rawhttp import request

from cyberun.api import Credentials, Endpoints
from cyberun.errors import AuthenticationError, NotFound, PermissionDenied, ServerError
from cyberun.retry import RetryPolicy
from cyberun.sse import iter_events
from cyberun.testing import CyberunEmulator, ManualClock
from cyberun.transports import Timeout, transport_by_name


@pytest.fixture(scope="module", params=SSE_IDS, ids=IDS)
def server(request: pytest.FixtureRequest) -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock(), sse_ids=request.param) as emulator:
        yield emulator


@pytest.fixture(params=["requests", "urllib3", "urllib"])
def endpoints(request: pytest.FixtureRequest, server: CyberunEmulator) -> Iterator[Endpoints]:
    if request.param != "urllib":
        pytest.importorskip(request.param)
    transport = transport_by_name(request.param)
    yield Endpoints(
        base_url=server.base_url,
        credentials=Credentials(server.api_key),
        transport=transport,
        timeout=Timeout(5, 10),
        retry=RetryPolicy(sleep=lambda seconds: None),
    )
    transport.close()


def test_run_follow_and_fetch(endpoints: Endpoints, server: CyberunEmulator) -> None:
    task_id = endpoints.run_workflow(
        "text-to-image", {"parameters": {"prompt": "a lighthouse", "steps": 3}}
    )
    task = endpoints.get_task(task_id)
    assert task.id == task_id and task.task_status == "pending" and task.task_source == "api_key"
    server.advance(10)
    task = endpoints.get_task(task_id)
    assert task.task_status == "completed" and task.is_terminal and task.completed_at is not None
    events = [e.event for e in iter_events(endpoints.open_events(task_id).iter_bytes())]
    assert events == ["completed"]
    result = endpoints.get_result(task_id)
    assert result.task_output is not None and result.task_output["image_count"] == 1
    ((_, url),) = result.urls()
    download = endpoints.open_download(url)
    assert download.read().startswith(b"\x89PNG")
    assert server.storage_requests[-1].header("Authorization") is None


def test_run_by_version_and_by_id(endpoints: Endpoints) -> None:
    v1 = endpoints.get_workflow("text-to-image@1")
    assert v1.version == 1 and v1.parameter("steps") is not None
    assert endpoints.get_workflow(v1.id).id == v1.id
    assert endpoints.run_workflow(v1.id, {"parameters": {"prompt": "x"}})


def test_lists_and_cancel(endpoints: Endpoints, server: CyberunEmulator) -> None:
    slow = endpoints.run_workflow("slow-render", {"parameters": {}})
    endpoints.cancel_task(slow)
    endpoints.cancel_task(slow)  # a no-op the second time
    assert endpoints.get_task(slow).task_status == "cancelled"
    cancelled = list(endpoints.iter_tasks(status="cancelled", per_page=2))
    assert slow in [t.id for t in cancelled]
    assert all(t.task_status == "cancelled" for t in cancelled)
    slugs = {w.workflow_slug for w in endpoints.iter_workflows(per_page=2)}
    assert {"text-to-image", "gaussian-splat", "multi-output"} <= slugs


def test_upload_then_run_with_the_file(endpoints: Endpoints, server: CyberunEmulator) -> None:
    payload = b"PK\x03\x04 not really a zip"
    target = endpoints.presign_upload("photos.zip", len(payload), "application/zip")
    endpoints.upload(target, io.BytesIO(payload), size=len(payload))
    assert server.storage_requests[-1].method == "PUT"
    assert server.storage_requests[-1].header("Authorization") is None
    task_id = endpoints.run_workflow("gaussian-splat", {"parameters": {"images": target.file_key}})
    server.advance(30)
    assert endpoints.get_task(task_id).task_status == "completed"


def test_errors_from_the_real_server(endpoints: Endpoints, server: CyberunEmulator) -> None:
    with pytest.raises(NotFound) as info:
        endpoints.get_task("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "task_not_found" and info.value.request_id
    with pytest.raises(PermissionDenied):  # sk- keys may not manage webhooks
        list(endpoints.iter_webhooks())
    server.inject("status", route="task", status=503, times=None)
    try:
        with pytest.raises(ServerError):
            endpoints.get_task("00000000-0000-4000-8000-000000000000")
    finally:
        server.clear_faults()


def test_wrong_key(server: CyberunEmulator) -> None:
    transport = transport_by_name("urllib")
    endpoints = Endpoints(
        base_url=server.base_url,
        credentials=Credentials("sk-wrong"),
        transport=transport,
        timeout=Timeout(),
        retry=RetryPolicy(),
    )
    with pytest.raises(AuthenticationError):
        endpoints.get_task("x")
    transport.close()


def test_webhooks_with_a_device_key(server: CyberunEmulator) -> None:
    transport = transport_by_name("urllib")
    endpoints = Endpoints(
        base_url=server.base_url,
        credentials=Credentials(server.device_key),
        transport=transport,
        timeout=Timeout(),
        retry=RetryPolicy(),
    )
    hook = endpoints.create_webhook(
        display_name="ci",
        webhook_url="https://example.com/hook",
        webhook_events=["task.completed"],
    )
    assert hook.webhook_secret and hook.webhook_secret.startswith("whsec_")
    assert endpoints.get_webhook(hook.id).webhook_secret is None  # only shown on creation
    assert endpoints.update_webhook(hook.id, {"display_name": "renamed"}).display_name == "renamed"
    assert endpoints.rotate_webhook_secret(hook.id) != hook.webhook_secret
    assert hook.id in [h.id for h in endpoints.iter_webhooks()]
    endpoints.delete_webhook(hook.id)
    with pytest.raises(NotFound):
        endpoints.get_webhook(hook.id)
    transport.close()


def test_jwt_with_team(server: CyberunEmulator) -> None:
    transport = transport_by_name("urllib")
    endpoints = Endpoints(
        base_url=server.base_url,
        credentials=Credentials(server.jwt, server.team_id),
        transport=transport,
        timeout=Timeout(),
        retry=RetryPolicy(),
    )
    task_id = endpoints.run_workflow("text-to-image", {"parameters": {"prompt": "x"}})
    assert endpoints.get_task(task_id).task_source == "jwt"
    assert server.requests[-1].header("X-Team-ID") == "[redacted]"
    transport.close()
    assert request(server.base_url + "/api/v1/r/tasks").status == 401
