"""Client configuration: arguments, environment, base URLs, security rules, repr."""

from __future__ import annotations

from typing import List

import pytest

import cyberun
from cyberun.client import normalize_base_url
from cyberun.errors import ConfigurationError, WaitStopped
from cyberun.transports import MockTransport, Request, Response

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CYBERUN_API_KEY", "CYBERUN_TEAM_ID", "CYBERUN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def recording_transport() -> MockTransport:
    return MockTransport(lambda request: Response(200, content=b'{"id": "t"}'))


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="CYBERUN_API_KEY"):
        cyberun.Client()


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", "sk-from-env")
    monkeypatch.setenv("CYBERUN_TEAM_ID", "team-from-env")
    monkeypatch.setenv("CYBERUN_BASE_URL", "https://gateway.example/cyberun/api/v1")
    transport = recording_transport()
    client = cyberun.Client(transport=transport)
    client.get_task("t")
    sent = transport.requests[0]
    assert sent.url == "https://gateway.example/cyberun/api/v1/r/tasks/t"
    assert sent.headers["Authorization"] == "Bearer sk-from-env"
    assert sent.headers["X-Team-ID"] == "team-from-env"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", "sk-from-env")
    monkeypatch.setenv("CYBERUN_BASE_URL", "https://env.example")
    transport = recording_transport()
    client = cyberun.Client("sk-arg", base_url="https://arg.example", transport=transport)
    client.get_task("t")
    assert transport.requests[0].url.startswith("https://arg.example/api/v1/r/")
    assert transport.requests[0].headers["Authorization"] == "Bearer sk-arg"


def test_default_base_url() -> None:
    assert (
        cyberun.Client("sk-x", transport=recording_transport()).base_url
        == "https://core.cyberun.cloud"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://core.cyberun.cloud", "https://core.cyberun.cloud"),
        ("https://core.cyberun.cloud/", "https://core.cyberun.cloud"),
        ("https://core.cyberun.cloud/api/v1", "https://core.cyberun.cloud"),
        ("https://core.cyberun.cloud/api/v1/r/", "https://core.cyberun.cloud"),
        ("https://proxy.corp/cyberun", "https://proxy.corp/cyberun"),
        ("https://proxy.corp/cyberun/api/v1/r", "https://proxy.corp/cyberun"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765/api/v1", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_base_urls_are_normalised(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://core.cyberun.cloud", "plain http"),
        ("core.cyberun.cloud", "absolute"),
        ("ftp://core.cyberun.cloud", "absolute"),
        ("https://user:pass@core.cyberun.cloud", "credentials"),
        ("https://core.cyberun.cloud/?x=1", "query"),
    ],
)
def test_unsafe_or_malformed_base_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cyberun.Client("sk-x", base_url=url, transport=recording_transport())


def test_plain_http_to_another_host_needs_an_explicit_opt_in() -> None:
    client = cyberun.Client(
        "sk-x",
        base_url="http://intranet.corp",
        allow_insecure_http=True,
        transport=recording_transport(),
    )
    assert client.base_url == "http://intranet.corp"


def test_a_jwt_needs_a_team_id() -> None:
    with pytest.raises(ConfigurationError, match="team"):
        cyberun.Client(JWT, transport=recording_transport())
    assert cyberun.Client(JWT, team_id="t", transport=recording_transport())


def test_repr_shows_base_url_and_transport_never_the_key() -> None:
    client = cyberun.Client("sk-secret-value-123", transport=recording_transport())
    text = repr(client)
    assert "https://core.cyberun.cloud" in text and "MockTransport" in text
    assert "sk-secret" not in text
    assert "sk-secret" not in repr(client.api) and "sk-secret" not in repr(vars(client))


@pytest.mark.parametrize("name", ["urllib", "auto"])
def test_transport_by_name(name: str) -> None:
    client = cyberun.Client("sk-x", transport=name)
    assert isinstance(client.transport, cyberun.Transport)
    client.close()


def test_the_user_agent_names_the_transport() -> None:
    transport = recording_transport()
    cyberun.Client("sk-x", transport=transport).get_task("t")
    assert transport.requests[0].headers["User-Agent"].endswith("MockTransport")


def test_context_manager_closes_its_transport() -> None:
    closed: List[bool] = []

    class Closing(MockTransport):
        def close(self) -> None:
            closed.append(True)

    with cyberun.Client("sk-x", transport=Closing(lambda r: Response(200))) as client:
        pass
    assert closed == [True]
    with pytest.raises(WaitStopped):
        client.wait("t")


def test_invalid_settings() -> None:
    with pytest.raises(ConfigurationError):
        cyberun.Client("sk-x", poll_interval=0, transport=recording_transport())
    client = cyberun.Client("sk-x", transport=recording_transport())
    with pytest.raises(ValueError, match="mode"):
        client.wait("t", mode="carrier-pigeon")
    with pytest.raises(ValueError, match="mode"):
        client.events("t", mode="sometimes")


def test_timeouts_and_retries_accept_shorthands() -> None:
    client = cyberun.Client("sk-x", timeout=(2, 9), retry=2, transport=recording_transport())
    assert client.timeout == cyberun.Timeout(2, 9)
    assert client.retry.attempts == 2
    assert cyberun.Client("sk-x", retry=False, transport=recording_transport()).retry.attempts == 1


def test_run_passes_options_and_extra_body_through() -> None:
    def handler(request: Request) -> Response:
        if request.method == "GET":  # the parameter definitions, fetched to validate
            return Response(
                200,
                content=b'{"id": "w", "workflow_slug": "text-to-image", "version": 2,'
                b' "parameters": [{"key": "prompt", "type": "string", "required": true}]}',
            )
        return Response(202, content=b'{"task_id": "t1"}')

    transport = MockTransport(handler)
    client = cyberun.Client("sk-x", transport=transport)
    task = client.run(
        "text-to-image@2",
        {"prompt": "x"},
        dispatch_target="comfy_cloud",
        target_pool="community",
        submitter_region="us-east",
        tool_type="comfyui",
        extra_body={"priority": "high"},
    )
    assert task.id == "t1" and task == client.task("t1") and repr(task) == "<TaskHandle t1>"
    import json

    assert [r.method for r in transport.requests] == ["GET", "POST"]
    assert json.loads(transport.requests[1].body) == {  # type: ignore[arg-type]
        "parameters": {"prompt": "x"},
        "dispatch_target": "comfy_cloud",
        "target_pool": "community",
        "submitter_region": "us-east",
        "tool_type": "comfyui",
        "priority": "high",
    }


# --- with_options ------------------------------------------------------------------------------


def test_with_options_is_a_configured_copy_sharing_the_transport() -> None:
    closed: List[int] = []
    transport = recording_transport()
    transport.close = lambda: closed.append(1)  # type: ignore[method-assign]
    client = cyberun.Client("sk-x", transport=transport, retry=5, poll_interval=2.0)
    copy = client.with_options(timeout=(1, 2), reconnect_backoff=0.25)
    assert copy.transport is transport and copy.base_url == client.base_url
    assert copy.timeout == cyberun.Timeout(1, 2) and client.timeout == cyberun.Timeout()
    assert copy.retry.attempts == 5 and copy.poll_interval == 2.0  # kept
    assert copy.stream_settings.reconnect_backoff == 0.25
    assert client.stream_settings.reconnect_backoff == 0.5
    copy.get_task("t")
    assert transport.requests[-1].headers["Authorization"] == "Bearer sk-x"
    copy.close()
    assert closed == []  # closing a copy never closes the shared transport
    client.get_task("t")  # and the original keeps working
    client.close()
    assert closed == [1]


def test_with_options_lets_a_caller_turn_retries_off() -> None:
    answers = [Response(503, content=b'{"error": "busy"}'), Response(200, content=b'{"id": "t"}')]
    transport = MockTransport(lambda request: answers.pop(0))
    client = cyberun.Client("sk-x", transport=transport, retry=cyberun.RetryPolicy(backoff=0))
    with pytest.raises(cyberun.ServerError):
        client.with_options(retry=cyberun.RetryPolicy.never()).get_task("t")
    assert len(transport.requests) == 1
    assert client.get_task("t").id == "t"


def test_with_options_refuses_what_a_copy_cannot_change() -> None:
    client = cyberun.Client("sk-x", transport=recording_transport())
    for name in ("api_key", "team_id", "base_url", "transport"):
        with pytest.raises(TypeError):
            client.with_options(**{name: "x"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        client.with_options(poll_interval=0)
