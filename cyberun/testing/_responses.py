"""Register one task's routes on a ``responses`` mock, from a Timeline.

For suites that already mock HTTP with ``responses`` (requests transport
only): documented-shape answers without hand-written SSE bodies. The
answers are rendered by the emulator's own world (no socket is opened), at
the moment the task has finished.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from ._clock import ManualClock
from ._stream import event_bytes
from ._timeline import Timeline

__all__ = ["register_task"]

_PROMPT = {"key": "prompt", "type": "string", "label": "Prompt", "required": False}


def register_task(
    mock: Any,
    timeline: Optional[Timeline] = None,
    *,
    base_url: str = "https://core.cyberun.cloud",
    workflow: str = "text-to-image",
    parameters: Optional[Iterable[Dict[str, Any]]] = None,
    outputs: int = 1,
    storage_url: str = "https://storage.cyberun.test",
) -> str:
    """Register a finished task's routes on a ``responses.RequestsMock``; returns its id.

    Registered: the workflow definition (``GET .../workflows/slug/WORKFLOW``,
    which a run reads first to check its parameters), the run (``POST
    .../workflows/slug/WORKFLOW/run``, 202), the event stream (every event
    of the timeline, as the documented server writes them), the task, the
    result, and each output file's download on ``storage_url``:

    ```python
    import responses

    import cyberun
    from cyberun.testing import Timeline, register_task

    # Not every route is used by every run (the task route, say).
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        task_id = register_task(mock, Timeline.comfyui(3))
        api = "https://core.cyberun.cloud"  # the default base_url
        with cyberun.Client("sk-test", base_url=api, transport="requests") as client:
            result = client.run("text-to-image", {"prompt": "a fox"}).wait()
    print(result.id == task_id, result.task_status)  # True completed
    ```

    ``responses`` cannot pace a body: the stream arrives whole. A request
    no registration matches fails at once (``ConnectionError``), and the
    SDK retries it under its retry policy: give the client
    ``retry=cyberun.RetryPolicy(attempts=1)`` to fail fast.

    Args:
        mock: a ``responses.RequestsMock`` (or the ``responses`` module).
        timeline: what the task does (default: a three-step ComfyUI render).
        base_url: the API's host root the client uses.
        workflow: the workflow slug the client runs.
        parameters: the workflow's ParameterDefs (default: an optional
            string ``prompt``).
        outputs: result files (more than one: a cloud task with ``download_urls``).
        storage_url: the host the presigned download links point at.
    """
    from ._emulator import CyberunEmulator  # not started: no socket is opened

    emulator = CyberunEmulator(clock=ManualClock())
    world = emulator.world
    world.storage_url = storage_url.rstrip("/")
    existing = world.workflow_by_slug(workflow)  # a built-in slug: outrank it
    definition = emulator.add_workflow(
        workflow,
        version=1 if existing is None else existing.version + 1,
        timeline=timeline if timeline is not None else Timeline.comfyui(3),
        parameters=list(parameters) if parameters is not None else [_PROMPT],
        outputs=outputs,
    )
    task_id = emulator.create_task(workflow)
    task = world.task(task_id)
    assert task is not None
    emulator.advance(emulator.finish_time(task_id))
    root = base_url.rstrip("/") + "/api/v1/r"
    stream = b""
    for index, entry in enumerate(task.timeline):
        if entry.writes_event:
            stream += event_bytes(entry, index, world, ids=False, malformed=False)
        elif entry.action == "keepalive":
            stream += b": keep-alive\n\n"
    json_type = "application/json"
    mock.add("GET", f"{root}/workflows/slug/{workflow}", json=definition)
    mock.add(
        "POST", f"{root}/workflows/slug/{workflow}/run", json={"task_id": task_id}, status=202
    )
    mock.add(
        "GET",
        f"{root}/tasks/{task_id}/events",
        body=stream,
        content_type="text/event-stream; charset=utf-8",
    )
    mock.add(
        "GET", f"{root}/tasks/{task_id}", body=world.task_answer(task), content_type=json_type
    )
    mock.add(
        "GET",
        f"{root}/tasks/{task_id}/result",
        body=world.result_answer(task),
        content_type=json_type,
    )
    for output in task.outputs:
        url = world.sign_url("GET", output.storage_key, world.url_ttl).split("?", 1)[0]
        mock.add("GET", url, body=output.content, content_type=output.content_type)
    return task_id
