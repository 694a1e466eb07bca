"""The emulator's routes, auth rules and lifecycle, over plain http.client."""

from __future__ import annotations

import json
import threading
from typing import Iterator

import pytest
from rawhttp import Emu, request

from cyberun.testing import CyberunEmulator, ManualClock


@pytest.fixture
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.05) as emulator:
        yield emulator


@pytest.fixture
def manual() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock()) as emulator:
        yield emulator


# --- authentication ------------------------------------------------------------------


def test_integration_device_and_jwt_credentials_are_accepted(server: CyberunEmulator) -> None:
    assert Emu(server, server.api_key).call("GET", "/workflows").status == 200
    assert Emu(server, server.device_key).call("GET", "/workflows").status == 200
    jwt = Emu(server, server.jwt)
    assert jwt.call("GET", "/workflows", headers={"X-Team-ID": server.team_id}).status == 200


def test_jwt_without_team_id_is_a_400(server: CyberunEmulator) -> None:
    answer = Emu(server, server.jwt).call("GET", "/workflows")
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "missing_team_id"


def test_jwt_for_another_team_is_a_403(server: CyberunEmulator) -> None:
    answer = Emu(server, server.jwt).call("GET", "/workflows", headers={"X-Team-ID": "nope"})
    assert answer.status == 403


@pytest.mark.parametrize("token", ["", "sk-unknown", "Basic abc"])
def test_missing_or_unknown_credentials_are_a_401(server: CyberunEmulator, token: str) -> None:
    answer = Emu(server, token).call("GET", "/tasks")
    assert answer.status == 401


def test_error_bodies_share_one_shape(server: CyberunEmulator) -> None:
    for answer in (
        Emu(server, "sk-bad").call("GET", "/tasks"),
        Emu(server).call("GET", "/tasks/00000000-0000-4000-8000-000000000000"),
        Emu(server).call("GET", "/no/such/route"),
        Emu(server).call("DELETE", "/tasks"),
    ):
        body = answer.json()
        assert set(body) == {"error", "request_id"}
        assert set(body["error"]) == {"code", "message"}
        assert answer.headers["x-request-id"] == body["request_id"]


def test_sk_integration_key_may_not_manage_webhooks(server: CyberunEmulator) -> None:
    answer = Emu(server).call("GET", "/api/v1/webhooks")
    assert answer.status == 403
    assert "dk-" in answer.json()["error"]["message"]


# --- workflows ------------------------------------------------------------------------


def test_workflows_list_get_and_slug(server: CyberunEmulator) -> None:
    api = Emu(server)
    page = api.call("GET", "/workflows?per_page=100").json()
    slugs = {w["workflow_slug"] for w in page["workflow_list"]}
    assert {
        "text-to-image",
        "gaussian-splat",
        "always-fails",
        "slow-render",
        "multi-output",
    } <= slugs
    assert page["page_meta"]["total_count"] == len(page["workflow_list"])
    by_slug = api.call("GET", "/workflows/slug/text-to-image").json()
    assert by_slug["version"] == 2  # the latest version
    assert api.call("GET", "/workflows/slug/text-to-image@1").json()["version"] == 1
    by_id = api.call("GET", f"/workflows/{by_slug['id']}").json()
    assert by_id["id"] == by_slug["id"]
    assert "workflow_json" not in by_id  # hidden from sk- callers
    device = Emu(server, server.device_key).call("GET", f"/workflows/{by_slug['id']}").json()
    assert "workflow_json" in device
    assert api.call("GET", "/workflows/slug/nope").status == 404


def test_workflow_ids_and_slugs_are_stable_across_servers() -> None:
    with CyberunEmulator() as a, CyberunEmulator() as b:
        one = Emu(a).call("GET", "/workflows/slug/gaussian-splat").json()["id"]
        two = Emu(b).call("GET", "/workflows/slug/gaussian-splat").json()["id"]
    assert one == two


# --- running tasks ----------------------------------------------------------------------


def test_run_by_slug_by_id_and_by_version(server: CyberunEmulator) -> None:
    api = Emu(server)
    workflow = api.call("GET", "/workflows/slug/text-to-image").json()
    by_id = api.call("POST", f"/workflows/{workflow['id']}/run", {"parameters": {"prompt": "x"}})
    assert by_id.status == 202 and set(by_id.json()) == {"task_id"}
    v1_task = api.run("text-to-image@1")
    v1_events = [e for e in api.events(v1_task) if e.event == "progress"]
    assert json.loads(v1_events[-1].data)["step_total"] == 10  # v1's default; v2 has 20


def test_a_chunked_run_body_is_read_whole(server: CyberunEmulator) -> None:
    """Clients that stream a body without Content-Length send it chunked."""
    api = Emu(server)
    body = json.dumps({"parameters": {"prompt": "a fox in chunks", "steps": 13}}).encode()
    pieces = (body[i : i + 7] for i in range(0, len(body), 7))
    answer = api.call(
        "POST",
        "/workflows/slug/text-to-image/run",
        body=pieces,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 202, answer
    progress = [e for e in api.events(answer.json()["task_id"]) if e.event == "progress"]
    assert json.loads(progress[-1].data)["step_total"] == 13


def test_run_validates_required_parameters(server: CyberunEmulator) -> None:
    answer = Emu(server).call("POST", "/workflows/slug/text-to-image/run", {"parameters": {}})
    assert answer.status == 400
    assert "prompt" in answer.json()["error"]["message"]


def test_disabled_workflow_rejects_new_tasks(server: CyberunEmulator) -> None:
    answer = Emu(server).call("POST", "/workflows/slug/retired-workflow/run", {"parameters": {}})
    assert answer.status == 409


def test_invalid_json_body_is_a_400(server: CyberunEmulator) -> None:
    answer = request(
        Emu(server).url("/workflows/slug/text-to-image/run"),
        "POST",
        headers=Emu(server).headers(),
        body=b"{not json",
    )
    assert answer.status == 400


def test_task_has_every_documented_field(server: CyberunEmulator) -> None:
    api = Emu(server)
    task = api.call("GET", f"/tasks/{api.run()}").json()
    assert set(task) == {
        "id", "workflow_id", "task_source", "task_status", "created_at", "task_error",
        "retry_count", "started_at", "completed_at", "agent_id", "agent_labels",
        "gateway_id", "gpu_type", "dispatch_target", "target_pool", "tool_type",
    }  # fmt: skip
    assert task["task_source"] == "api_key"
    assert task["created_at"].endswith("Z")


def test_list_tasks_paginates_newest_first_and_filters(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    ids = []
    for _ in range(5):
        ids.append(api.run())
        manual.advance(0.01)
    failing = api.run("always-fails")
    manual.advance(100)
    page = api.call("GET", "/tasks?current_page=1&per_page=2").json()
    assert page["page_meta"] == {"current_page": 1, "per_page": 2, "total_count": 6}
    assert [t["id"] for t in page["task_list"]] == [failing, ids[-1]]
    last = api.call("GET", "/tasks?current_page=3&per_page=2").json()
    assert [t["id"] for t in last["task_list"]] == [ids[1], ids[0]]
    failed = api.call("GET", "/tasks?status=failed").json()
    assert [t["id"] for t in failed["task_list"]] == [failing]
    assert api.call("GET", "/tasks?per_page=101").status == 400
    assert api.call("GET", "/tasks?current_page=0").status == 400


def test_lifecycle_moves_with_a_manual_clock(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run()
    seen = []
    for _ in range(60):
        status = api.call("GET", f"/tasks/{task_id}").json()["task_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        manual.advance(0.1)
    assert seen == ["pending", "waiting", "queued", "running", "completed"]


def advancing(server: CyberunEmulator, step: float = 0.05) -> threading.Event:
    """Advance a manual clock in small steps from a thread until the event is set."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.002):
            server.advance(step)

    threading.Thread(target=tick, daemon=True).start()
    return done


def test_nerfstudio_tasks_provision_and_report_stages(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    target = api.presign("photos.zip", 3, "application/zip").json()
    assert (
        request(target["upload_url"], "PUT", headers=target["upload_headers"], body=b"zip").status
        == 200
    )
    task_id = api.run("gaussian-splat", {"images": target["file_key"]})
    done = advancing(manual)
    try:
        events = api.events(task_id)
    finally:
        done.set()
    statuses = [json.loads(e.data)["status"] for e in events if e.event == "status"]
    assert statuses == ["pending", "waiting", "provisioning", "queued", "running"]
    stages = [json.loads(e.data)["stage"] for e in events if e.event == "progress"]
    assert list(dict.fromkeys(stages)) == ["download", "process_data", "train", "export", "upload"]
    assert all(json.loads(e.data)["message"] for e in events if e.event == "progress")
    assert events[-1].event == "completed"


def test_file_parameter_must_be_an_uploaded_key(server: CyberunEmulator) -> None:
    answer = Emu(server).call(
        "POST", "/workflows/slug/gaussian-splat/run", {"parameters": {"images": "inputs/none"}}
    )
    assert answer.status == 400


def test_cancel_mid_run_and_on_a_finished_task(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run("slow-render")
    manual.advance(5)
    assert api.call("POST", f"/tasks/{task_id}/cancel").json() == {"cancelled": True}
    task = api.call("GET", f"/tasks/{task_id}").json()
    assert task["task_status"] == "cancelled"
    assert task["completed_at"] is not None
    assert api.call("POST", f"/tasks/{task_id}/cancel").status == 200  # no-op on terminal
    manual.advance(10_000)
    assert api.call("GET", f"/tasks/{task_id}").json()["task_status"] == "cancelled"


def test_cancel_ends_an_open_stream_with_a_cancelled_event(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run("slow-render")
    threading.Timer(0.3, lambda: api.call("POST", f"/tasks/{task_id}/cancel")).start()
    events = api.events(task_id)
    assert events[-1].event == "cancelled"


# --- results and storage --------------------------------------------------------------------


def test_results_by_outcome(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    done, failing, pending, cancelled = (
        api.run(),
        api.run("always-fails"),
        api.run("slow-render"),
        api.run("slow-render"),
    )
    api.call("POST", f"/tasks/{cancelled}/cancel")
    manual.advance(30)
    completed = api.call("GET", f"/tasks/{done}/result").json()
    assert completed["task_status"] == "completed"
    assert completed["task_output"]["image_count"] == 1
    assert completed["download_url"].startswith(manual.storage_url)
    assert completed["download_urls"] is None
    assert completed["expires_at"].endswith("Z")
    failed = api.call("GET", f"/tasks/{failing}/result").json()
    assert failed["task_output"] is None and "CUDA out of memory" in failed["task_error"]
    for task_id in (pending, cancelled):
        result = api.call("GET", f"/tasks/{task_id}/result").json()
        assert result["task_output"] is None and result["download_url"] is None


def test_multi_output_results_list_every_url(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run("multi-output")
    api.events(task_id)
    result = api.call("GET", f"/tasks/{task_id}/result").json()
    assert set(result["download_urls"]) == {"9.images.0", "9.images.1", "9.images.2"}
    # Seed 004: download_url is the primary output of a task whose output has
    # a storage_key; a cloud task's outputs are listed by key instead.
    assert "storage_key" not in result["task_output"] and result["download_url"] is None
    assert all("s3_key" in meta for meta in result["task_output"].values())
    bodies = {request(url).body for url in result["download_urls"].values()}
    assert len(bodies) == 3 and all(b.startswith(b"\x89PNG") for b in bodies)


def test_storage_serves_files_on_another_host_and_rejects_tampering(
    server: CyberunEmulator,
) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
    assert url.split("/")[2].split(":")[0] != server.base_url.split("/")[2].split(":")[0]
    ok = request(url)
    assert ok.status == 200 and ok.body.startswith(b"\x89PNG\r\n")
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert request(tampered).status == 403
    unsigned = url.split("?")[0]
    assert request(unsigned).status == 403
    with_auth = request(url, headers={"Authorization": f"Bearer {server.api_key}"})
    assert with_auth.status == 400 and b"Only one auth mechanism" in with_auth.body
    assert server.storage_requests[-1].header("Authorization") == "[redacted]"


def test_storage_supports_ranges(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
    whole = request(url).body
    part = request(url, headers={"Range": "bytes=10-"})
    assert part.status == 206 and part.body == whole[10:]
    assert part.headers["content-range"] == f"bytes 10-{len(whole) - 1}/{len(whole)}"
    assert request(url, headers={"Range": f"bytes={len(whole)}-"}).status == 416


def test_download_urls_expire_on_the_emulator_clock() -> None:
    with CyberunEmulator(clock=ManualClock(), url_ttl=60) as server:
        api = Emu(server)
        task_id = api.run()
        server.advance(30)
        url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
        assert request(url).status == 200
        server.advance(62)
        expired = request(url)
        assert expired.status == 403 and b"expired" in expired.body
        fresh = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
        assert request(fresh).status == 200


def test_presign_and_signed_put(server: CyberunEmulator) -> None:
    api = Emu(server)
    target = api.presign("cat.png", 5, "image/png").json()
    assert set(target) == {"file_key", "upload_url", "upload_headers"}
    assert target["upload_headers"] == {"Content-Length": "5", "If-None-Match": "*"}
    url = target["upload_url"]
    assert (
        request(url, "PUT", headers={"Content-Length": "5"}, body=b"hello").status == 403
    )  # If-None-Match missing
    assert (
        request(url, "PUT", headers={"If-None-Match": "*"}, body=b"hell").status == 403
    )  # wrong length
    assert request(url, "PUT", headers=target["upload_headers"], body=b"hello").status == 200
    assert (
        request(url, "PUT", headers=target["upload_headers"], body=b"hello").status == 412
    )  # exists
    auth = dict(target["upload_headers"], Authorization="Bearer x")
    assert request(url, "PUT", headers=auth, body=b"hello").status == 400
    bad = api.call("POST", "/files/presign", {"file_name": "", "file_size": -1})
    assert bad.status == 400 and "content_type" in bad.json()["error"]["message"]
    too_big = api.presign("x", 600 * 1024 * 1024, "x/y")
    assert too_big.status == 400


# --- the request log -------------------------------------------------------------


def test_requests_are_recorded_with_credentials_redacted(server: CyberunEmulator) -> None:
    api = Emu(server, server.jwt)
    api.call("GET", "/workflows", headers={"X-Team-ID": server.team_id})
    record = server.requests[-1]
    assert (record.method, record.path, record.route, record.status) == (
        "GET",
        "/api/v1/r/workflows",
        "workflows",
        200,
    )
    assert record.header("authorization") == "[redacted]"
    assert record.header("X-Team-ID") == "[redacted]"
    assert server.jwt not in repr(server.requests) and server.team_id not in repr(server.requests)


def test_storage_requests_are_logged_separately_with_signatures_redacted(
    server: CyberunEmulator,
) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
    request(url)
    assert [r.route for r in server.storage_requests] == ["download"]
    assert server.storage_requests[0].task_id == task_id
    signature = url.split("X-Amz-Signature=")[1]
    assert signature not in repr(server.storage_requests)
    assert all(r.listener == "api" for r in server.requests)


MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/tasks?current_page=x", None, 400, "invalid_pagination"),
        ("GET", "/workflows/slug/no-such-workflow", None, 404, "workflow_not_found"),
        ("GET", f"/workflows/{MISSING}", None, 404, "workflow_not_found"),
        (
            "POST",
            "/workflows/slug/no-such-workflow/run",
            {"parameters": {}},
            404,
            "workflow_not_found",
        ),
        ("POST", f"/workflows/{MISSING}/run", {"parameters": {}}, 404, "workflow_not_found"),
        ("POST", "/workflows/slug/text-to-image/run", {"parameters": [1]}, 400, "invalid_request"),
        ("GET", f"/api/v1/webhooks/{MISSING}", None, 404, "webhook_not_found"),
        ("PUT", f"/api/v1/webhooks/{MISSING}", {"is_active": False}, 404, "webhook_not_found"),
        ("DELETE", f"/api/v1/webhooks/{MISSING}", None, 404, "webhook_not_found"),
        ("POST", f"/api/v1/webhooks/{MISSING}/rotate-secret", None, 404, "webhook_not_found"),
    ],
)
def test_every_error_answer_has_the_documented_shape(
    server: CyberunEmulator, method: str, path: str, body: object, status: int, code: str
) -> None:
    answer = Emu(server, server.device_key).call(method, path, body)
    assert answer.status == status, answer
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert answer.headers["content-type"].startswith("application/json")


def test_an_invalid_webhook_update_is_refused_and_changes_nothing(server: CyberunEmulator) -> None:
    admin = Emu(server, server.device_key)
    created = admin.create_webhook("https://hooks.example/x", ["task.failed"]).json()
    answer = admin.call("PUT", f"/api/v1/webhooks/{created['id']}", {"webhook_url": "ftp://x"})
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_webhook"
    current = admin.call("GET", f"/api/v1/webhooks/{created['id']}").json()
    assert current["webhook_url"] == "https://hooks.example/x"
    assert admin.call("DELETE", f"/api/v1/webhooks/{created['id']}").status == 200
