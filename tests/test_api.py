"""The endpoint layer against MockTransport: requests, errors, retries, redirects, pages."""

from __future__ import annotations

import io
import json
import platform
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from cyberun import _version
from cyberun.api import Credentials, Endpoints, check_parameters, raise_for_parameters
from cyberun.errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    ConnectError,
    DecodeError,
    NotFound,
    ParameterError,
    RateLimited,
    ReadError,
    ReadTimeoutError,
    ServerError,
    SubmissionUncertain,
    TooManyRedirects,
)
from cyberun.models import UploadTarget, Workflow
from cyberun.retry import RetryPolicy
from cyberun.transports import MockTransport, Request, Response, Timeout

BASE = "https://core.cyberun.cloud"
KEY = "sk-test-0123456789abcdef"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
TEAM = "019abc12-4567-7890-abcd-ef1234567891"
TASK = "019abc12-9012-7890-abcd-ef1234567896"

Handler = Callable[[Request], Response]


def json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        content=json.dumps(body).encode(),
    )


class Router:
    """Answers by (method, path); a list of answers is served in order."""

    def __init__(self) -> None:
        self.routes: Dict[Tuple[str, str], List[Any]] = {}
        self.sleeps: List[float] = []

    def on(self, method: str, path: str, *answers: Any) -> Router:
        self.routes.setdefault((method, path), []).extend(answers)
        return self

    def __call__(self, request: Request) -> Response:
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        path = "/" + path
        answers = self.routes.get((request.method, path)) or self.routes.get(
            (request.method, path.split("?")[0])
        )
        assert answers, f"unexpected {request.method} {path}"
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(request)  # type: ignore[no-any-return]
        return answer  # type: ignore[no-any-return]


def make(
    router: Router,
    *,
    token: str = KEY,
    team: Optional[str] = None,
    attempts: int = 4,
    base: str = BASE,
) -> Tuple[Endpoints, MockTransport]:
    transport = MockTransport(router)
    endpoints = Endpoints(
        base_url=base,
        credentials=Credentials(token, team),
        transport=transport,
        timeout=Timeout(),
        retry=RetryPolicy(attempts=attempts, sleep=router.sleeps.append, random=lambda: 0.5),
        user_agent_suffix="MockTransport",
    )
    return endpoints, transport


TASK_JSON = {
    "id": TASK,
    "workflow_id": "w",
    "task_status": "running",
    "created_at": "2025-02-10T14:00:00Z",
}


# --- credentials ---------------------------------------------------------------------------


def test_credential_kinds_and_headers() -> None:
    assert Credentials("sk-x").kind == "integration"
    assert Credentials("dk-x").kind == "device"
    assert Credentials(JWT, TEAM).kind == "jwt"
    assert Credentials("sk-x", TEAM).headers() == {
        "Authorization": "Bearer sk-x",
        "X-Team-ID": TEAM,
    }
    assert Credentials("sk-x").headers() == {"Authorization": "Bearer sk-x"}


def test_a_jwt_without_a_team_is_refused_locally() -> None:
    with pytest.raises(ConfigurationError, match="CYBERUN_TEAM_ID"):
        Credentials(JWT)


@pytest.mark.parametrize("token", ["", "   ", "sk-with space", "sk-\nx"])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ConfigurationError):
        Credentials(token)


def test_credentials_never_show_the_token() -> None:
    text = repr(Credentials(KEY, TEAM))
    assert KEY not in text and "integration" in text


# --- requests --------------------------------------------------------------------------------


def test_every_request_carries_auth_user_agent_and_identity_encoding() -> None:
    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", json_response(200, TASK_JSON))
    endpoints, transport = make(router, team=TEAM)
    task = endpoints.get_task(TASK)
    assert task.task_status == "running"
    sent = transport.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["X-Team-ID"] == TEAM
    assert sent.headers["User-Agent"] == (
        f"cyberun-python/{_version.__version__} Python/{platform.python_version()} MockTransport"
    )
    assert sent.headers["Accept-Encoding"] == "identity"
    assert sent.headers["Accept"] == "application/json"


def test_run_by_slug_keeps_the_version_and_sends_options() -> None:
    router = Router().on(
        "POST",
        "/api/v1/r/workflows/slug/text-to-image@2/run",
        json_response(202, {"task_id": TASK}),
    )
    endpoints, transport = make(router)
    body = {
        "parameters": {"prompt": "fox"},
        "dispatch_target": "agent",
        "target_pool": "community",
    }
    assert endpoints.run_workflow("text-to-image@2", body) == TASK
    sent = transport.requests[0]
    assert json.loads(sent.body) == body  # type: ignore[arg-type]
    assert sent.headers["Content-Type"] == "application/json"


def test_run_by_workflow_id() -> None:
    workflow_id = "019abc12-8901-7890-abcd-ef1234567895"
    router = Router().on(
        "POST", f"/api/v1/r/workflows/{workflow_id}/run", json_response(202, {"task_id": TASK})
    )
    endpoints, _ = make(router)
    assert endpoints.run_workflow(workflow_id, {"parameters": {}}) == TASK


def test_run_answer_without_a_task_id_is_a_decode_error() -> None:
    router = Router().on(
        "POST", "/api/v1/r/workflows/slug/x/run", json_response(202, {"id": TASK})
    )
    with pytest.raises(DecodeError, match="task_id"):
        make(router)[0].run_workflow("x", {"parameters": {}})


@pytest.mark.parametrize(
    ("task_id", "encoded"),
    [
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("a b", "a%20b"),
        ("ü", "%C3%BC"),
    ],
)
def test_ids_cannot_change_the_path(task_id: str, encoded: str) -> None:
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{encoded}", json_response(200, dict(TASK_JSON, id=task_id))
    )
    endpoints, transport = make(router)
    endpoints.get_task(task_id)
    assert transport.requests[0].url == f"{BASE}/api/v1/r/tasks/{encoded}"


@pytest.mark.parametrize("task_id", ["", ".", "..", "a\x00b", "a\nb"])
def test_ids_that_cannot_be_made_safe_are_refused(task_id: str) -> None:
    endpoints, transport = make(Router())
    with pytest.raises(ValueError):  # noqa: PT011
        endpoints.get_task(task_id)
    assert transport.requests == []


def test_list_tasks_page_query() -> None:
    router = Router().on(
        "GET",
        "/api/v1/r/tasks?current_page=2&per_page=5&status=failed",
        json_response(
            200,
            {
                "task_list": [TASK_JSON],
                "page_meta": {"current_page": 2, "per_page": 5, "total_count": 6},
            },
        ),
    )
    page = make(router)[0].list_tasks_page(2, 5, "failed")
    assert (page.current_page, page.per_page, page.total_count, page.page_count) == (2, 5, 6, 2)
    assert page.items[0].id == TASK


def test_cancel_is_a_post_that_may_be_retried() -> None:
    router = Router().on(
        "POST",
        f"/api/v1/r/tasks/{TASK}/cancel",
        json_response(503, {}),
        json_response(200, {"ok": True}),
    )
    endpoints, transport = make(router)
    endpoints.cancel_task(TASK)
    assert len(transport.requests) == 2


def test_result_and_events_requests() -> None:
    router = (
        Router()
        .on(
            "GET",
            f"/api/v1/r/tasks/{TASK}/result",
            json_response(200, {"id": TASK, "task_status": "completed"}),
        )
        .on(
            "GET",
            f"/api/v1/r/tasks/{TASK}/events",
            Response(200, {"Content-Type": "text/event-stream"}, stream=iter([b"data: x\n\n"])),
        )
    )
    endpoints, transport = make(router)
    assert endpoints.get_result(TASK).task_status == "completed"
    response = endpoints.open_events(TASK, last_event_id="41")
    assert response.read() == b"data: x\n\n"
    sent = transport.requests[1]
    assert sent.headers["Accept"] == "text/event-stream" and sent.headers["Last-Event-ID"] == "41"
    assert sent.headers["Cache-Control"] == "no-cache"


def test_workflows_by_id_slug_and_list() -> None:
    workflow = {
        "id": "019abc12-8901-7890-abcd-ef1234567895",
        "workflow_slug": "text-to-image",
        "parameters": [{"key": "prompt", "type": "string", "required": True}],
    }
    router = (
        Router()
        .on("GET", "/api/v1/r/workflows/slug/text-to-image@1", json_response(200, workflow))
        .on("GET", f"/api/v1/r/workflows/{workflow['id']}", json_response(200, workflow))
        .on(
            "GET",
            "/api/v1/r/workflows?current_page=1&per_page=50",
            json_response(
                200,
                {
                    "workflow_list": [workflow],
                    "page_meta": {"current_page": 1, "per_page": 50, "total_count": 1},
                },
            ),
        )
    )
    endpoints, _ = make(router)
    assert endpoints.get_workflow("text-to-image@1").parameters[0].key == "prompt"
    assert endpoints.get_workflow(str(workflow["id"])).workflow_slug == "text-to-image"
    assert [w.workflow_slug for w in endpoints.iter_workflows()] == ["text-to-image"]


def test_webhook_management_endpoints() -> None:
    hook = {
        "id": "h1",
        "display_name": "n",
        "webhook_url": "https://x/h",
        "webhook_events": ["task.completed"],
        "webhook_secret": "whsec_abc",
    }
    router = (
        Router()
        .on("POST", "/api/v1/webhooks", json_response(201, hook))
        .on("GET", "/api/v1/webhooks/h1", json_response(200, hook))
        .on("PUT", "/api/v1/webhooks/h1", json_response(200, dict(hook, display_name="m")))
        .on("DELETE", "/api/v1/webhooks/h1", json_response(200, {}))
        .on(
            "POST",
            "/api/v1/webhooks/h1/rotate-secret",
            json_response(200, {"webhook_secret": "whsec_new"}),
        )
        .on(
            "GET",
            "/api/v1/webhooks?current_page=1&per_page=50",
            json_response(
                200,
                {
                    "webhook_list": [hook],
                    "page_meta": {"total_count": 1, "per_page": 50, "current_page": 1},
                },
            ),
        )
    )
    endpoints, transport = make(router, token="dk-device")
    created = endpoints.create_webhook(
        display_name="n", webhook_url="https://x/h", webhook_events=["task.completed"]
    )
    assert created.webhook_secret == "whsec_abc"
    assert json.loads(transport.requests[0].body) == {
        "display_name": "n",
        "webhook_url": "https://x/h",
        "webhook_events": ["task.completed"],
    }  # type: ignore[arg-type]
    assert endpoints.get_webhook("h1").id == "h1"
    assert endpoints.update_webhook("h1", {"display_name": "m"}).display_name == "m"
    assert endpoints.rotate_webhook_secret("h1") == "whsec_new"
    assert [h.id for h in endpoints.iter_webhooks()] == ["h1"]
    endpoints.delete_webhook("h1")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "code"),
    [
        (
            404,
            {"error": {"code": "task_not_found", "message": "task not found"}},
            NotFound,
            "task not found",
            "task_not_found",
        ),
        (
            400,
            {"message": "bad parameters", "code": "invalid"},
            BadRequest,
            "bad parameters",
            "invalid",
        ),
        (401, {"detail": "token expired"}, AuthenticationError, "token expired", None),
        (403, {"error": "licence lacks webhooks"}, APIError, "licence lacks webhooks", None),
        (500, "upstream exploded", ServerError, "upstream exploded", None),
        (418, "", APIError, "", None),
        (409, '["a JSON list"]', APIError, '["a JSON list"]', None),
        (
            422,
            {"detail": [{"loc": ["steps"], "msg": "too big"}]},
            APIError,
            '[{"loc": ["steps"], "msg": "too big"}]',
            None,
        ),
        (502, "x" * 2000, ServerError, "x" * 500, None),
    ],
)
def test_error_answers(
    status: int, body: Any, cls: type, message: str, code: Optional[str]
) -> None:
    content = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
    router = Router().on(
        "GET",
        f"/api/v1/r/tasks/{TASK}",
        Response(status, {"X-Request-ID": "req_42"}, content=content),
    )
    with pytest.raises(cls) as info:
        make(router, attempts=1)[0].get_task(TASK)
    error = info.value
    assert isinstance(error, APIError)
    assert (error.status, error.message, error.code, error.request_id) == (
        status,
        message,
        code,
        "req_42",
    )
    assert (error.method, error.url) == ("GET", f"{BASE}/api/v1/r/tasks/{TASK}")
    assert f"HTTP {status}" in str(error) and "req_42" in str(error)


def test_401_says_what_to_check() -> None:
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{TASK}", json_response(401, {"error": "unauthorized"})
    )
    with pytest.raises(AuthenticationError, match="CYBERUN_API_KEY"):
        make(router)[0].get_task(TASK)


def test_credentials_echoed_by_the_server_are_redacted() -> None:
    router = Router().on(
        "GET",
        f"/api/v1/r/tasks/{TASK}",
        json_response(
            400, {"message": f"key {KEY} is not valid for https://s3/x?X-Amz-Signature=SIGSECRET"}
        ),
    )
    with pytest.raises(BadRequest) as info:
        make(router)[0].get_task(TASK)
    assert KEY not in str(info.value) and "SIGSECRET" not in str(info.value)


def test_rate_limited_after_retries_carries_retry_after() -> None:
    limited = json_response(429, {"error": "slow down"}, {"Retry-After": "2"})
    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", limited)
    with pytest.raises(RateLimited) as info:
        make(router, attempts=3)[0].get_task(TASK)
    assert info.value.retry_after == 2.0
    assert router.sleeps == [2.0, 2.0]
    assert "retry after 2s" in str(info.value)


def test_malformed_json_answer_is_a_decode_error() -> None:
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{TASK}", Response(200, content=b"<html>proxy login</html>")
    )
    with pytest.raises(DecodeError, match="expected JSON") as info:
        make(router)[0].get_task(TASK)
    assert "proxy login" in info.value.snippet


def test_oversized_json_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import cyberun._pipeline

    monkeypatch.setattr(cyberun._pipeline, "MAX_JSON_BODY", 100)
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{TASK}", Response(200, stream=iter([b"{" + b" " * 1000]))
    )
    with pytest.raises(DecodeError, match="limit"):  # a whole body too large: not retried
        make(router)[0].get_task(TASK)


# --- retries ----------------------------------------------------------------------------------


def test_get_is_retried_on_503_with_backoff() -> None:
    router = Router().on(
        "GET",
        f"/api/v1/r/tasks/{TASK}",
        json_response(503, {}),
        json_response(502, {}),
        json_response(200, TASK_JSON),
    )
    endpoints, transport = make(router)
    assert endpoints.get_task(TASK).id == TASK
    assert len(transport.requests) == 3
    assert router.sleeps == [0.25, 0.5]  # full jitter with random() = 0.5: 0.5 * 0.5, 0.5 * 1.0


def test_get_is_retried_on_connection_errors_and_gives_up() -> None:
    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", ConnectError("refused"))
    endpoints, transport = make(router, attempts=3)
    with pytest.raises(ConnectError):
        endpoints.get_task(TASK)
    assert len(transport.requests) == 3


def test_run_is_not_retried_on_503() -> None:
    router = Router().on("POST", "/api/v1/r/workflows/slug/x/run", json_response(503, {}))
    endpoints, transport = make(router)
    with pytest.raises(ServerError):
        endpoints.run_workflow("x", {"parameters": {}})
    assert len(transport.requests) == 1


def test_run_is_retried_when_the_connection_was_refused() -> None:
    router = Router().on(
        "POST",
        "/api/v1/r/workflows/slug/x/run",
        ConnectError("refused"),
        json_response(202, {"task_id": TASK}),
    )
    endpoints, transport = make(router)
    assert endpoints.run_workflow("x", {"parameters": {}}) == TASK
    assert len(transport.requests) == 2


@pytest.mark.parametrize("failure", [ReadTimeoutError("silent"), ReadError("reset")])
def test_run_failing_after_sending_is_uncertain_and_not_retried(failure: Exception) -> None:
    router = Router().on("POST", "/api/v1/r/workflows/slug/x/run", failure)
    endpoints, transport = make(router)
    with pytest.raises(SubmissionUncertain, match="may exist") as info:
        endpoints.run_workflow("x", {"parameters": {}})
    assert len(transport.requests) == 1
    assert info.value.workflow == "x" and info.value.submitted_at is not None
    assert "find_submitted" in str(info.value)


@pytest.mark.parametrize("status", [502, 504])
def test_run_behind_a_failing_gateway_is_uncertain(status: int) -> None:
    router = Router().on("POST", "/api/v1/r/workflows/slug/x/run", json_response(status, {}))
    with pytest.raises(SubmissionUncertain):
        make(router)[0].run_workflow("x", {"parameters": {}})


def test_a_body_that_cannot_be_replayed_is_not_retried() -> None:
    router = Router().on("PUT", "/put", json_response(503, {}))
    endpoints, transport = make(router)
    with pytest.raises(ServerError):
        endpoints.send("PUT", f"{BASE}/put", body=iter([b"a", b"b"]))
    assert len(transport.requests) == 1


def test_a_seekable_file_body_is_rewound_for_a_retry() -> None:
    seen: List[bytes] = []

    def capture(request: Request) -> Response:
        seen.append(request.body.read())  # type: ignore[union-attr]
        return json_response(503 if len(seen) == 1 else 200, {})

    router = Router().on("PUT", "/put", capture)
    make(router)[0].send("PUT", f"{BASE}/put", body=io.BytesIO(b"payload")).close()
    assert seen == [b"payload", b"payload"]


# --- redirects ---------------------------------------------------------------------------------


def test_get_redirect_on_the_same_origin_keeps_the_credential() -> None:
    router = (
        Router()
        .on(
            "GET",
            f"/api/v1/r/tasks/{TASK}",
            Response(302, {"Location": f"/api/v1/r/tasks/{TASK}?moved=1"}),
        )
        .on("GET", f"/api/v1/r/tasks/{TASK}?moved=1", json_response(200, TASK_JSON))
    )
    endpoints, transport = make(router, team=TEAM)
    endpoints.get_task(TASK)
    assert [r.headers.get("Authorization") for r in transport.requests] == [f"Bearer {KEY}"] * 2


def test_redirect_to_another_host_drops_the_credential_for_good() -> None:
    router = (
        Router()
        .on(
            "GET",
            f"/api/v1/r/tasks/{TASK}",
            Response(307, {"Location": "https://elsewhere.example/t"}),
        )
        .on("GET", "/t", Response(302, {"Location": f"{BASE}/api/v1/r/tasks/{TASK}?back=1"}))
        .on("GET", f"/api/v1/r/tasks/{TASK}?back=1", json_response(200, TASK_JSON))
    )
    endpoints, transport = make(router, team=TEAM)
    endpoints.get_task(TASK)
    assert "Authorization" in transport.requests[0].headers
    for request in transport.requests[1:]:
        assert "Authorization" not in request.headers and "X-Team-ID" not in request.headers


def test_redirect_that_downgrades_to_http_drops_the_credential() -> None:
    router = Router().on(
        "GET",
        f"/api/v1/r/tasks/{TASK}",
        Response(301, {"Location": f"http://core.cyberun.cloud/api/v1/r/tasks/{TASK}"}),
    )
    endpoints, transport = make(router)
    with pytest.raises(TooManyRedirects):  # the mock keeps redirecting; only headers matter here
        endpoints.get_task(TASK)
    assert transport.requests[1].url.startswith("http://")
    assert all("Authorization" not in r.headers for r in transport.requests[1:])


def test_too_many_redirects() -> None:
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{TASK}", Response(302, {"Location": f"/api/v1/r/tasks/{TASK}"})
    )
    endpoints, transport = make(router)
    with pytest.raises(TooManyRedirects):
        endpoints.get_task(TASK)
    assert len(transport.requests) == 6


def test_post_redirects_are_not_followed() -> None:
    router = Router().on(
        "POST", "/api/v1/r/workflows/slug/x/run", Response(307, {"Location": "/elsewhere"})
    )
    with pytest.raises(APIError) as info:
        make(router)[0].run_workflow("x", {"parameters": {}})
    assert info.value.status == 307


def test_redirect_to_a_non_http_scheme_is_refused() -> None:
    router = Router().on(
        "GET", f"/api/v1/r/tasks/{TASK}", Response(302, {"Location": "file:///etc/passwd"})
    )
    with pytest.raises(TooManyRedirects, match="not an absolute http"):
        make(router)[0].get_task(TASK)


# --- pagination -------------------------------------------------------------------------------


def _page(items: List[str], total: int, page: int, per_page: int = 2) -> Response:
    return json_response(
        200,
        {
            "task_list": [{"id": i} for i in items],
            "page_meta": {"current_page": page, "per_page": per_page, "total_count": total},
        },
    )


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"tasks": [{"id": "a"}], "page_meta": {"total_count": 1}}, ["a"]),  # another key
        ({"page_meta": {"total_count": 0}}, []),  # no list at all: an empty page
        ({"task_list": {"id": "a"}}, "task_list is not a list"),
        ([{"id": "a"}], "expected a task_list envelope"),
    ],
)
def test_page_envelopes_are_read_liberally_but_not_blindly(body: Any, outcome: Any) -> None:
    router = Router().on("GET", "/api/v1/r/tasks", json_response(200, body))
    endpoints, _ = make(router)
    if isinstance(outcome, list):
        assert [t.id for t in endpoints.list_tasks_page().items] == outcome
    else:
        with pytest.raises(DecodeError, match=outcome):
            endpoints.list_tasks_page()


def test_a_rotate_secret_answer_without_the_secret_is_a_decode_error() -> None:
    router = Router().on("POST", "/api/v1/webhooks/h1/rotate-secret", json_response(200, {}))
    with pytest.raises(DecodeError, match="no webhook_secret"):
        make(router, token=JWT, team=TEAM)[0].rotate_webhook_secret("h1")


def test_iteration_stops_at_the_total_count() -> None:
    router = (
        Router()
        .on("GET", "/api/v1/r/tasks?current_page=1&per_page=2", _page(["a", "b"], 3, 1))
        .on("GET", "/api/v1/r/tasks?current_page=2&per_page=2", _page(["c"], 3, 2))
    )
    endpoints, transport = make(router)
    assert [t.id for t in endpoints.iter_tasks(per_page=2)] == ["a", "b", "c"]
    assert len(transport.requests) == 2


def test_iteration_survives_an_inconsistent_server() -> None:
    # total_count says 1000 but page 2 is empty: stop there.
    router = (
        Router()
        .on("GET", "/api/v1/r/tasks?current_page=1&per_page=2", _page(["a", "b"], 1000, 1))
        .on("GET", "/api/v1/r/tasks?current_page=2&per_page=2", _page([], 1000, 2))
    )
    assert [t.id for t in make(router)[0].iter_tasks(per_page=2)] == ["a", "b"]


def test_iteration_stops_when_the_server_ignores_the_page_number() -> None:
    router = Router().on("GET", "/api/v1/r/tasks", _page(["a", "b"], 10, 1))
    assert [t.id for t in make(router)[0].iter_tasks(per_page=2)] == ["a", "b"]


def test_iteration_honours_a_limit_lazily() -> None:
    router = Router().on(
        "GET", "/api/v1/r/tasks?current_page=1&per_page=2", _page(["a", "b"], 10, 1)
    )
    endpoints, transport = make(router)
    assert [t.id for t in endpoints.iter_tasks(per_page=2, limit=1)] == ["a"]
    assert len(transport.requests) == 1


# --- parameters, uploads ----------------------------------------------------------------------

WORKFLOW = Workflow(
    id="w",
    workflow_slug="text-to-image",
    parameters=[
        # ParameterDef built through the converter keeps types honest
    ],
)


def _workflow() -> Workflow:
    from cyberun._convert import structure

    return structure(
        {
            "id": "w",
            "workflow_slug": "text-to-image",
            "parameters": [
                {"key": "prompt", "type": "string", "required": True},
                {"key": "steps", "type": "number", "min": 1, "max": 50, "default": 20},
                {"key": "sampler", "type": "select", "options": ["euler", "dpmpp_2m"]},
                {"key": "hires", "type": "boolean"},
                {"key": "image", "type": "file"},
                {"key": "seed", "type": "number", "required": True, "default": 0},
            ],
        },
        Workflow,
    )


def test_valid_parameters_have_no_problems() -> None:
    assert (
        check_parameters(
            _workflow(), {"prompt": "a fox", "steps": 20, "sampler": "euler", "hires": True}
        )
        == []
    )


def test_every_parameter_problem_is_listed() -> None:
    problems = check_parameters(
        _workflow(), {"steps": 99, "sampler": "ddim", "hires": "yes", "image": 3, "colour": "red"}
    )
    text = " | ".join(problems)
    assert "unknown parameter 'colour'" in text
    assert "missing required parameter 'prompt'" in text
    assert "above its maximum 50" in text
    assert "not one of its options" in text
    assert "must be true or false" in text
    assert "'image' must be a string" in text
    assert len(problems) == 6
    with pytest.raises(ParameterError) as info:
        raise_for_parameters(_workflow(), {"steps": 0})
    assert info.value.problems and info.value.workflow == "text-to-image"


def test_upload_sends_signed_headers_and_never_the_credential() -> None:
    target = UploadTarget(
        "inputs/a.png",
        "https://storage.example/bucket/a.png?X-Amz-Signature=s",
        {"Content-Length": "7", "If-None-Match": "*"},
    )
    router = Router().on("PUT", "/bucket/a.png?X-Amz-Signature=s", Response(200))
    endpoints, transport = make(router, team=TEAM)
    progress: List[Tuple[int, int]] = []
    endpoints.upload(
        target,
        io.BytesIO(b"pngdata"),
        size=7,
        on_progress=lambda sent, total: progress.append((sent, total)),
    )
    sent = transport.requests[0]
    assert "Authorization" not in sent.headers and "X-Team-ID" not in sent.headers
    assert sent.headers["If-None-Match"] == "*" and sent.headers["Content-Length"] == "7"
    assert b"".join(sent.body) == b"pngdata"  # type: ignore[arg-type]
    assert progress[-1] == (7, 7)


def test_an_upload_retry_that_finds_the_object_stored_succeeds() -> None:
    target = UploadTarget(
        "k", "https://storage.example/b/k?sig=1", {"Content-Length": "1", "If-None-Match": "*"}
    )
    router = Router().on("PUT", "/b/k?sig=1", Response(503), Response(412))
    endpoints, transport = make(router)
    endpoints.upload(target, b"x", size=1)
    assert len(transport.requests) == 2


def test_presign_request() -> None:
    router = Router().on(
        "POST",
        "/api/v1/r/files/presign",
        json_response(
            200,
            {
                "file_key": "inputs/k",
                "upload_url": "https://s/k?sig",
                "upload_headers": {"Content-Length": "3"},
            },
        ),
    )
    endpoints, transport = make(router)
    target = endpoints.presign_upload("a.zip", 3, "application/zip")
    assert target.file_key == "inputs/k"
    assert json.loads(transport.requests[0].body) == {
        "file_name": "a.zip",
        "file_size": 3,
        "content_type": "application/zip",
    }  # type: ignore[arg-type]


# --- scoped: a deadline and a cancel token on every request ---------------------------------


def _retry_later(request: Request) -> Response:
    return json_response(503, {"error": "busy"}, {"Retry-After": "30"})


def _really_waiting(router: Router) -> Endpoints:
    # The default sleep: a cancel must end the real wait, not a fake one.
    endpoints, _ = make(router)
    endpoints.retry = RetryPolicy(attempts=4, retry_after_max=60)
    return endpoints


def test_scoped_requests_carry_the_deadline_and_the_cancel_token() -> None:
    from cyberun.transports import CancelToken

    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", json_response(200, TASK_JSON))
    endpoints, transport = make(router)
    token = CancelToken()
    scoped = endpoints.scoped(deadline=time.monotonic() + 60, cancel=token)
    scoped.get_task(TASK)
    endpoints.get_task(TASK)
    assert transport.requests[0].cancel is token and transport.requests[0].deadline is not None
    assert transport.requests[1].cancel is None and transport.requests[1].deadline is None
    later = scoped.scoped(deadline=time.monotonic() + 120)
    assert later._deadline == scoped._deadline  # the earlier deadline wins
    assert not hasattr(endpoints, "derive")


def test_a_cancel_ends_a_retry_wait_at_once() -> None:
    from cyberun.errors import RequestCancelled
    from cyberun.transports import CancelToken

    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", _retry_later)
    endpoints = _really_waiting(router)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(RequestCancelled, match="waiting to retry"):
        endpoints.scoped(cancel=token).get_task(TASK)
    assert time.monotonic() - started < 1.0  # not the 30 s the server asked for


def test_a_retry_that_would_outlast_the_deadline_is_not_waited_for() -> None:
    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", _retry_later)
    endpoints = _really_waiting(router)
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        endpoints.scoped(deadline=time.monotonic() + 5).get_task(TASK)
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after == 30


def test_a_deadline_that_has_passed_sends_nothing() -> None:
    from cyberun.errors import ConnectTimeoutError

    router = Router().on("GET", f"/api/v1/r/tasks/{TASK}", json_response(200, TASK_JSON))
    endpoints, transport = make(router)
    with pytest.raises(ConnectTimeoutError, match="deadline"):
        endpoints.scoped(deadline=time.monotonic() - 1).get_task(TASK)
    assert transport.requests == []
