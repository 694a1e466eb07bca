"""run / run_and_wait: explicit keyword-only options, validation on by default, extra_body."""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List

import pytest

import cyberun
from cyberun import NotFound, ParameterError, ServerError
from cyberun.testing import CyberunEmulator
from cyberun.transports import MockTransport, Request, Response

from .conftest import ClientFactory, routes

RUN_KEYWORDS = [
    "dispatch_target",
    "target_pool",
    "submitter_region",
    "tool_type",
    "validate",
    "on_upload_progress",
    "extra_body",
]
WAIT_KEYWORDS = ["timeout", "on_event", "mode", "cancel_on_timeout", "stop"]


def keyword_only(function: Any) -> List[str]:
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def test_the_signatures_are_explicit() -> None:
    run = inspect.signature(cyberun.Client.run)
    assert list(run.parameters)[:3] == ["self", "workflow", "parameters"]
    assert keyword_only(cyberun.Client.run) == RUN_KEYWORDS
    assert run.parameters["validate"].default is True
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in run.parameters.values())
    wait_keywords = keyword_only(cyberun.Client.run_and_wait)
    assert wait_keywords[: len(RUN_KEYWORDS)] == RUN_KEYWORDS
    assert {*WAIT_KEYWORDS, "download_to", "overwrite"} <= set(wait_keywords)
    assert inspect.signature(cyberun.Client.run_and_wait).parameters["validate"].default is True
    assert inspect.signature(cyberun.Client.run_and_wait).parameters["mode"].default == "auto"


@pytest.mark.parametrize(
    "mistake",
    [{"valdiate": True}, {"timeout": 5}, {"dispatch_targt": "agent"}, {"prompt": "x"}],
)
def test_an_unknown_keyword_starts_nothing(
    server: CyberunEmulator, make_client: ClientFactory, mistake: Dict[str, Any]
) -> None:
    client = make_client(server)
    server.clear_logs()
    with pytest.raises(TypeError, match="unexpected keyword"):
        client.run("text-to-image", {"prompt": "x"}, **mistake)
    if "timeout" not in mistake:  # timeout is a run_and_wait keyword
        with pytest.raises(TypeError, match="unexpected keyword"):
            client.run_and_wait("text-to-image", {"prompt": "x"}, **mistake)
    assert server.requests == []


def test_extra_body_carries_fields_this_version_does_not_know() -> None:
    definitions = {"id": "w", "workflow_slug": "text-to-image", "parameters": []}
    sent: List[Request] = []

    def handler(request: Request) -> Response:
        sent.append(request)
        if request.method == "GET":
            return Response(200, content=json.dumps(definitions).encode())
        return Response(202, content=b'{"task_id": "t1"}')

    client = cyberun.Client("sk-x", transport=MockTransport(handler))
    client.run(
        "text-to-image",
        {"prompt": "x"},
        submitter_region="us-east",
        extra_body={"priority": "high", "submitter_region": "eu-west"},
    )
    assert json.loads(sent[-1].body) == {  # type: ignore[arg-type]
        "parameters": {"prompt": "x"},
        "submitter_region": "eu-west",  # extra_body wins: it is the escape hatch
        "priority": "high",
    }


def test_closed_choices_are_checked_and_open_enums_pass(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    server.clear_logs()
    with pytest.raises(ValueError, match="dispatch_target must be 'agent' or 'comfy_cloud'"):
        client.run("text-to-image", {"prompt": "x"}, dispatch_target="agnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target_pool"):
        client.run("text-to-image", {"prompt": "x"}, target_pool="everyone")  # type: ignore[arg-type]
    assert server.requests == []
    client.run(
        "text-to-image",
        {"prompt": "x"},
        dispatch_target=cyberun.DispatchTarget.AGENT,
        tool_type="comfyui",
    )


def test_validation_is_on_by_default(server: CyberunEmulator, make_client: ClientFactory) -> None:
    client = make_client(server)
    server.clear_logs()
    with pytest.raises(ParameterError) as info:
        client.run("text-to-image", {"prompt": "x", "steps": 999, "colour": "red"})
    assert len(info.value.problems) == 2
    with pytest.raises(ParameterError, match="must be a number"):
        client.run_and_wait("text-to-image", {"prompt": "x", "steps": "abc"})
    assert routes(server, "run") == 0


def test_validate_false_skips_the_check_and_the_request(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    server.clear_logs()
    client.run("text-to-image", {"prompt": "x", "colour": "red"}, validate=False)
    assert [r.route for r in server.requests] == ["run"]


def test_definitions_are_fetched_once_per_client_and_workflow(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    server.clear_logs()
    for n in range(3):
        client.run("text-to-image", {"prompt": str(n)})
    client.run("multi-output", {"prompt": "x"})
    assert routes(server, "workflow") == 2 and routes(server, "run") == 4
    make_client(server).run("text-to-image", {"prompt": "again"})
    assert routes(server, "workflow") == 3  # another client fetches its own


def test_a_workflow_without_definitions_skips_the_unknown_key_check(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    server.add_workflow("undocumented", parameters=[])
    client = make_client(server)
    task = client.run("undocumented", {"anything": 1})
    assert task.wait().task_status == "completed"


def test_a_failed_definition_fetch_raises_and_names_the_switch(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server, retry=False)
    server.clear_logs()
    server.inject("status", route="workflow", status=503, times=1)
    with pytest.raises(ServerError) as info:
        client.run("text-to-image", {"prompt": "x"})
    assert "validate=False" in str(info.value) and info.value.status == 503
    assert routes(server, "run") == 0
    with pytest.raises(NotFound, match="validate=False"):
        client.run("no-such-workflow", {"prompt": "x"})
    assert routes(server, "run") == 0


def test_a_local_file_for_a_file_parameter_passes_validation(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Any
) -> None:
    photos = tmp_path / "photos.zip"
    photos.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    client = make_client(server)
    assert client.run("gaussian-splat", {"images": photos, "iterations": 500}).id


def test_follow_mode_is_exported_and_checked(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    assert cyberun.FollowMode.__args__ == ("auto", "stream", "poll")  # type: ignore[attr-defined]
    assert "FollowMode" in cyberun.__all__
    client = make_client(server)
    server.clear_logs()
    with pytest.raises(ValueError, match="mode must be one of"):
        client.run_and_wait("text-to-image", {"prompt": "x"}, mode="streem")  # type: ignore[arg-type]
    assert routes(server, "run") == 0
