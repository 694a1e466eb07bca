"""A user's script that touches every public name of ``cyberun``: clean under pyright strict.

Checked by tests/typing/test_typing.py (mypy --strict and pyright strict),
never run: it only has to type-check as a user's code would.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cyberun
from cyberun import (
    DEFAULT,
    APIError,
    AuthenticationError,
    BadRequest,
    BaseTransport,
    CancelledEvent,
    CancelToken,
    Client,
    CompletedEvent,
    Completion,
    ConfigurationError,
    Conflict,
    ConnectError,
    ConnectTimeoutError,
    CyberunError,
    DecodeError,
    DefaultType,
    DeliveryDeduplicator,
    DispatchTarget,
    DownloadError,
    ErrorEvent,
    EventStream,
    FailedEvent,
    FollowMode,
    Headers,
    InvalidSignature,
    MockTransport,
    NotFound,
    OpenEnum,
    Page,
    ParameterDef,
    ParameterError,
    ParameterType,
    PermissionDenied,
    ProgressEvent,
    RateLimited,
    ReadError,
    ReadTimeoutError,
    Request,
    RequestCancelled,
    RequestsTransport,
    Response,
    RetryPolicy,
    RunOutcome,
    ServerError,
    ServerSentEvent,
    SSELimitError,
    SSEParser,
    StatusEvent,
    StreamError,
    SubmissionUncertain,
    TargetPool,
    Task,
    TaskCancelled,
    TaskError,
    TaskEvent,
    TaskFailed,
    TaskHandle,
    TaskResult,
    TaskSource,
    TaskStatus,
    Timeout,
    TLSError,
    ToolType,
    TooManyRedirects,
    Transport,
    TransportError,
    UnknownEvent,
    UnknownTaskStatus,
    UploadTarget,
    Urllib3Transport,
    UrllibTransport,
    WaitStopped,
    WaitTimeout,
    Webhook,
    WebhookDelivery,
    WebhookEventType,
    Workflow,
    WorkflowStatus,
    __version__,
    decode_event,
    parse_delivery,
    sign_webhook,
    verify_signature,
)


def describe(event: TaskEvent) -> str:
    if isinstance(event, StatusEvent):
        status: TaskStatus = event.status
        return f"status {status.value} {status.is_terminal}"
    if isinstance(event, ProgressEvent):
        percent: Optional[float] = event.percentage
        return f"{percent} {event.step_current}/{event.step_total} {event.stage} {event.message}"
    if isinstance(event, CompletedEvent):
        return f"completed {event.task_id}"
    if isinstance(event, FailedEvent):
        return f"failed {event.error}"
    if isinstance(event, CancelledEvent):
        return "cancelled"
    if isinstance(event, ErrorEvent):
        return f"server problem {event.message}"
    if isinstance(event, UnknownEvent):
        return f"{event.event}: {event.data}"
    return event.type


def handler(request: Request) -> Response:
    headers: Headers = request.headers
    return (
        Response(200, headers={"Content-Type": "application/json"}, content=b"{}", url=request.url)
        if headers
        else Response(404)
    )


def follow(client: Client, mode: FollowMode) -> Tuple[TaskResult, List[Path]]:
    task: TaskHandle = client.run(
        "text-to-image",
        {"prompt": "a lighthouse", "steps": 20, "photo": Path("photo.png")},
        dispatch_target="agent",
        target_pool=TargetPool.TEAM,
        submitter_region="us-east",
        tool_type=ToolType.COMFYUI,
        validate=True,
        on_upload_progress=lambda key, sent, total: print(key, sent, total),
        extra_body={"priority": "high"},
    )
    stop = threading.Event()
    with client.events(task.id, mode=mode, timeout=60.0, stop=stop) as stream:
        checked: EventStream = stream
        for event in checked:
            print(describe(event))
    result: TaskResult = task.wait(timeout=600.0, on_event=print, mode=mode, stop=stop)
    files: List[Path] = task.download(Path("out"), overwrite=True)
    for key, url in result.urls():
        print(key, url, result.expires_at, result.task_status)
    return result, files


def run_many(client: Client, prompts: Sequence[str]) -> Dict[str, Optional[TaskResult]]:
    outcome: RunOutcome = client.run_and_wait(
        "text-to-image",
        {"prompt": prompts[0]},
        timeout=600.0,
        mode="auto",
        cancel_on_timeout=True,
        download_to="out",
        overwrite=False,
    )
    print(outcome.task.id, outcome.result.id, outcome.files)
    tasks = [client.run("text-to-image", {"prompt": p}) for p in prompts]
    done: Dict[str, Optional[TaskResult]] = {}
    for completion in client.as_completed(tasks, max_streams=4, timeout=3600.0, mode="poll"):
        finished: Completion = completion
        done[finished.task_id] = finished.result if finished.ok else None
    return done


def look_around(client: Client) -> None:
    task: Task = client.get_task("t")
    print(
        task.task_status,
        task.task_source == TaskSource.API_KEY,
        task.dispatch_target == DispatchTarget.AGENT,
    )
    for listed in client.list_tasks(TaskStatus.RUNNING, per_page=50, limit=10):
        print(listed.id, listed.created_at)
    for listed in client.list_tasks("completed"):
        print(listed.id)
    workflow: Workflow = client.get_workflow("text-to-image@2")
    print(workflow.workflow_status == WorkflowStatus.ACTIVE)
    for definition in workflow.parameters:
        param: ParameterDef = definition
        print(param.key, param.type == ParameterType.NUMBER, param.option_values())
    page: Page[Workflow] = client.api.list_workflows_page()
    print(page.items, page.total_count)
    webhook: Webhook = client.create_webhook(
        "https://example.com/hook", ["task.completed", WebhookEventType.TASK_FAILED]
    )
    print(webhook.id, client.rotate_webhook_secret(webhook.id))
    target: UploadTarget = client.api.presign_upload("a.png", 3, "image/png")
    print(target.file_key, client.upload_file(Path("a.png")))
    known: Tuple[OpenEnum, ...] = TaskStatus.known()
    print(known)


def receive(body: bytes, signature: Optional[str], secret: str) -> Optional[WebhookDelivery]:
    print(sign_webhook(body, secret))
    try:
        verify_signature(body, signature, [secret, "whsec_old"])
        delivery: WebhookDelivery = parse_delivery(
            body, {"X-Webhook-Signature-256": signature or ""}, secret
        )
    except InvalidSignature:
        return None
    dedupe = DeliveryDeduplicator()
    return delivery if dedupe.first_time(delivery) else None


def parse(chunks: Iterator[bytes]) -> List[TaskEvent]:
    parser = SSEParser()
    events: List[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return [decode_event(sse) for sse in events if sse.own_id is None or sse.id]


def configure() -> List[Client]:
    defaults: DefaultType = DEFAULT
    clients = [
        Client("sk-x", timeout=defaults, retry=defaults),
        Client("sk-x", timeout=Timeout(connect=5.0, read=None), retry=RetryPolicy(attempts=2)),
        Client("sk-x", timeout=(5.0, 30.0), retry=RetryPolicy().replace(backoff=1.0)),
        Client("sk-x", transport=MockTransport(handler)),
        Client("sk-x", transport="urllib", allow_insecure_http=True),
    ]
    transports: List[Transport] = [UrllibTransport(), Urllib3Transport(), RequestsTransport()]
    base: type[BaseTransport] = BaseTransport
    print(transports, base, __version__, cyberun.Client is Client)
    with Client("sk-x") as client:
        print(client.base_url, client.timeout.read, client.retry.attempts, client.transport)
    return clients


def handle(client: Client) -> None:
    try:
        follow(client, "stream")
    except ParameterError as error:
        print(error.problems, error.workflow)
    except SubmissionUncertain as error:
        print(error.workflow, error.submitted_at)
    except TaskFailed as error:
        failed: Optional[Task] = error.task
        print(error.error, error.task_id, failed)
    except WaitTimeout as error:
        cancel_error: Optional[CyberunError] = error.cancel_error
        print(error.task_id, cancel_error)
    except UnknownTaskStatus as error:
        print(error.status, error.task_id)
    except (TaskCancelled, WaitStopped) as error:
        print(error.task_id)
    except TaskError as error:
        print(error.task)
    except RateLimited as error:
        print(error.retry_after)
    except (AuthenticationError, PermissionDenied, NotFound, Conflict, BadRequest, ServerError):
        pass
    except APIError as error:
        print(error.status, error.message, error.request_id)
    except (ConnectError, TLSError, ConnectTimeoutError, ReadTimeoutError, ReadError):
        pass
    except TooManyRedirects:
        pass
    except RequestCancelled:
        pass
    except TransportError as error:
        print(error.url)
    except SSELimitError as error:
        parsed: List[ServerSentEvent] = error.events
        print(parsed, error.limit)
    except StreamError:
        pass
    except DownloadError as error:
        print(error.key, error.status)
    except DecodeError as error:
        print(error.what, error.snippet)
    except ConfigurationError:
        pass
    except CyberunError:
        pass


class MyClient(Client):
    """A subclass keeps its type through ``with`` (``__enter__`` returns ``Self``)."""

    def extra(self) -> int:
        return 1


def subclass() -> int:
    with MyClient("sk-x") as mine:
        return mine.extra()


def cancel_from_another_thread(client: Client) -> None:
    token = CancelToken()
    remove = token.add_callback(lambda: print("cancelled"))
    threading.Timer(1.0, token.cancel).start()
    print(token.wait(2.0), token.cancelled)
    remove()
    request = Request("GET", f"{client.base_url}/api/v1/r/tasks", deadline=10.0, cancel=token)
    print(request.deadline, request.cancel)
