"""The emulator's API listener: every runtime endpoint and the webhook management API."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from ._faults import Fault
from ._http import Dropped, Handler, StreamWriter
from ._world import TERMINAL, Entry, TaskRecord

__all__ = ["ApiHandler"]

_STREAM_FAULTS = (
    "drop",
    "stall",
    "keepalive_only",
    "wrong_content_type",
    "malformed_json",
    "error_event",
    "no_terminal",
    "slow_drip",
    "reset",
)


def _route(
    method: str, pattern: str, name: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(func: Callable[..., None]) -> Callable[..., None]:
        ApiHandler.ROUTES.append((method, re.compile(f"^{pattern}$"), name, func))
        return func

    return register


class ApiHandler(Handler):
    """Serves ``/api/v1/r/...`` and ``/api/v1/webhooks...``."""

    listener = "api"
    ROUTES: List[Tuple[str, re.Pattern[str], str, Callable[..., None]]] = []
    principal: Dict[str, Any]

    def handle_request(self) -> None:
        found = self.match(self.ROUTES)
        if found is None:
            return
        name, func, params = found
        params = {key: unquote(value) for key, value in params.items()}
        self.record.route = name
        self.record.task_id = params.get("task")
        task_id = params.get("task")
        if not self.apply_request_faults(name, task_id):
            return
        principal = self.authenticate(management=name == "webhooks")
        if principal is None:
            return
        self.principal = principal
        func(self, **params)

    # -- faults -------------------------------------------------------------------------

    def apply_request_faults(self, route: str, task_id: Optional[str]) -> bool:
        """Faults that happen before any answer; False when the request was answered."""
        kinds = ("latency", "status") if route == "events" else ("latency", "status", "reset")
        before = self.emulator.faults.take(
            kinds, route, task_id, where=lambda fault: not fault.get("after_accept")
        )
        return self.apply_answer_faults(before)

    def apply_answer_faults(self, faults: List[Fault]) -> bool:
        """Apply latency, reset and status faults; False when the request was answered."""
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(float(fault.get("seconds", 0.5)))
            elif fault.kind == "reset":
                if not fault.get("after_accept"):
                    self.read_body()
                self.reset_connection()
            elif fault.kind == "status":
                status = int(fault.get("status", 503))
                headers = {}
                if fault.get("retry_after") is not None:
                    headers["Retry-After"] = str(fault.get("retry_after"))
                if not fault.get("after_accept"):
                    self.read_body()
                body = fault.get("body")
                if body is not None:
                    self.send_bytes(
                        status, str(body).encode(), "text/plain; charset=utf-8", headers
                    )
                else:
                    self.send_error_json(status, f"http_{status}", "injected failure", headers)
                return False
        return True

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, *, management: bool) -> Optional[Dict[str, Any]]:
        """Check the credential; answer 400/401/403 and return None when it fails."""
        emulator = self.emulator
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.read_body()
            self.send_error_json(401, "unauthorized", "missing bearer token")
            return None
        token = token.strip()
        kind = emulator._credential_kind(token)
        if kind is None:
            self.read_body()
            self.send_error_json(401, "unauthorized", "unknown or revoked credential")
            return None
        if kind == "jwt":
            team = self.headers.get("X-Team-ID")
            if not team:
                self.read_body()
                self.send_error_json(
                    400, "missing_team_id", "X-Team-ID header is required for session tokens"
                )
                return None
            if team != emulator.team_id:
                self.read_body()
                self.send_error_json(403, "forbidden", "you are not a member of that team")
                return None
        if management and kind == "integration":
            self.read_body()
            self.send_error_json(
                403,
                "forbidden",
                "webhook management needs a session JWT with X-Team-ID or a dk- device credential",
            )
            return None
        return {
            "kind": kind,
            "team": emulator.team_id,
            "source": "jwt" if kind == "jwt" else "api_key",
        }

    # -- helpers -----------------------------------------------------------------------------

    def task_or_404(self, task_id: str) -> Optional[TaskRecord]:
        task = self.emulator._tasks.get(task_id)
        if task is None:
            self.send_error_json(404, "task_not_found", f"task {task_id} not found")
        return task

    def page(self, items: List[Any], key: str) -> None:
        try:
            current = int(self.query.get("current_page", "1"))
            per_page = int(self.query.get("per_page", "20"))
        except ValueError:
            self.send_error_json(
                400, "invalid_pagination", "current_page and per_page must be integers"
            )
            return
        if current < 1 or not 1 <= per_page <= 100:
            self.send_error_json(400, "invalid_pagination", "current_page >= 1, per_page 1-100")
            return
        start = (current - 1) * per_page
        self.send_json(
            200,
            {
                key: items[start : start + per_page],
                "page_meta": {
                    "current_page": current,
                    "per_page": per_page,
                    "total_count": len(items),
                },
            },
        )


# --- workflows ------------------------------------------------------------------------


@_route("POST", r"/api/v1/r/workflows/slug/(?P<slug>[^/]+)/run", "run")
def run_by_slug(self: ApiHandler, slug: str) -> None:
    workflow = self.emulator._workflow_by_slug(slug)
    body = self.read_json()
    if body is None:
        return
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {slug} not found")
        return
    _run(self, workflow, body)


@_route("POST", r"/api/v1/r/workflows/(?P<workflow_id>[^/]+)/run", "run")
def run_by_id(self: ApiHandler, workflow_id: str) -> None:
    workflow = self.emulator._workflows.get(workflow_id)
    body = self.read_json()
    if body is None:
        return
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {workflow_id} not found")
        return
    _run(self, workflow, body)


def _run(self: ApiHandler, workflow: Any, body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("parameters", {}), dict):
        self.send_error_json(400, "invalid_request", 'body must be {"parameters": {...}}')
        return
    if workflow.workflow_status != "active":
        self.send_error_json(409, "workflow_disabled", f"workflow {workflow.slug} is disabled")
        return
    problems = self.emulator._check_parameters(workflow, body.get("parameters", {}))
    if problems:
        self.send_error_json(400, "invalid_parameters", "; ".join(problems))
        return
    options = {
        k: body[k]
        for k in ("dispatch_target", "target_pool", "submitter_region", "tool_type")
        if k in body
    }
    task = self.emulator._create_task(
        workflow, body.get("parameters", {}), self.principal["source"], options
    )
    self.record.task_id = task.id
    # The task exists now; an `after_accept` fault cuts (or replaces) the
    # answer that would have told the client so: the double-billing case.
    after = self.emulator.faults.take(
        ("reset", "status"), "run", task.id, where=lambda fault: bool(fault.get("after_accept"))
    )
    if self.apply_answer_faults(after):
        self.send_json(202, {"task_id": task.id})


@_route("GET", r"/api/v1/r/workflows", "workflows")
def list_workflows(self: ApiHandler) -> None:
    items = [
        self.emulator._workflow_json(w, self.principal["kind"])
        for w in self.emulator._latest_workflows()
    ]
    self.page(items, "workflow_list")


@_route("GET", r"/api/v1/r/workflows/slug/(?P<slug>[^/]+)", "workflow")
def get_workflow_by_slug(self: ApiHandler, slug: str) -> None:
    workflow = self.emulator._workflow_by_slug(slug)
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {slug} not found")
        return
    self.send_json(200, self.emulator._workflow_json(workflow, self.principal["kind"]))


@_route("GET", r"/api/v1/r/workflows/(?P<workflow_id>[^/]+)", "workflow")
def get_workflow(self: ApiHandler, workflow_id: str) -> None:
    workflow = self.emulator._workflows.get(workflow_id)
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {workflow_id} not found")
        return
    self.send_json(200, self.emulator._workflow_json(workflow, self.principal["kind"]))


# --- tasks ---------------------------------------------------------------------------------


@_route("GET", r"/api/v1/r/tasks", "tasks")
def list_tasks(self: ApiHandler) -> None:
    status = self.query.get("status")
    tasks = sorted(self.emulator._tasks.values(), key=lambda t: t.created, reverse=True)
    items = [self.emulator._task_json(t) for t in tasks]
    if status:
        items = [item for item in items if item["task_status"] == status]
    self.page(items, "task_list")


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)", "task")
def get_task(self: ApiHandler, task: str) -> None:
    record = self.task_or_404(task)
    if record is not None:
        self.send_json(200, self.emulator._task_json(record))


@_route("POST", r"/api/v1/r/tasks/(?P<task>[^/]+)/cancel", "cancel")
def cancel_task(self: ApiHandler, task: str) -> None:
    self.read_body()
    record = self.task_or_404(task)
    if record is not None:
        self.emulator._cancel(record)
        self.send_json(200, {"cancelled": True})


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)/result", "result")
def get_result(self: ApiHandler, task: str) -> None:
    record = self.task_or_404(task)
    if record is None:
        return
    ttl = None
    for fault in self.emulator.faults.take(("expire_urls",), "result", task):
        ttl = float(fault.get("seconds", 0))
    self.send_json(200, self.emulator._result_json(record, ttl=ttl))


@_route("POST", r"/api/v1/r/files/presign", "presign")
def presign(self: ApiHandler) -> None:
    body = self.read_json()
    if body is None:
        return
    problems = []
    if not isinstance(body, dict):
        body = {}
    name = body.get("file_name")
    size = body.get("file_size")
    content_type = body.get("content_type")
    if not isinstance(name, str) or not name:
        problems.append("file_name is required")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        problems.append("file_size must be a non-negative integer")
    elif size > self.emulator.max_upload_size:
        problems.append(f"file_size exceeds the {self.emulator.max_upload_size}-byte limit")
    if not isinstance(content_type, str) or not content_type:
        problems.append("content_type is required")
    if problems:
        self.send_error_json(400, "invalid_request", "; ".join(problems))
        return
    self.send_json(200, self.emulator._presign_upload(name, size, content_type))


# --- the event stream ---------------------------------------------------------------------


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)/events", "events")
def stream_events(self: ApiHandler, task: str) -> None:
    emulator = self.emulator
    record = self.task_or_404(task)
    if record is None:
        return
    faults: Dict[str, Fault] = {
        f.kind: f for f in emulator.faults.take(_STREAM_FAULTS, "events", task)
    }
    if "wrong_content_type" in faults:
        content_type = faults["wrong_content_type"].get("content_type", "text/html; charset=utf-8")
        self.send_bytes(200, b"<html><body>Gateway login required</body></html>", content_type)
        return
    chunked = emulator.sse_framing == "chunked"
    self.record.status = 200
    self.send_response(200)
    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
    self.send_header("Cache-Control", "no-cache")
    self.send_header("X-Request-ID", self.request_id)
    if chunked:
        self.send_header("Transfer-Encoding", "chunked")
    # The server closes the connection once the stream ends, and says so.
    self.send_header("Connection", "close")
    self.close_connection = True
    self.end_headers()
    cut = faults.get("drop") or faults.get("reset")
    writer = StreamWriter(
        self,
        chunked=chunked,
        cut_after=cut.get("after_bytes") if cut else None,
        cut_how="reset" if cut is not None and cut.kind == "reset" else "drop",
        drip_delay=float(faults["slow_drip"].get("delay", 0.001))
        if "slow_drip" in faults
        else None,
        stopping=emulator._stopping,
    )
    _stream(self, record, writer, faults)
    writer.finish()


def _event_bytes(entry: Entry, index: int, emulator: Any, malformed: bool) -> bytes:
    data = dict(entry.data)
    if entry.event != "error":
        data.setdefault("timestamp", emulator._wall(entry.time))
    if entry.event == "completed":
        data.setdefault("completed_at", emulator._wall(entry.time))
    text = json.dumps(data, separators=(",", ":"))
    if malformed:
        text = text[: len(text) // 2] + "{{not json"
    lines = []
    if emulator.sse_ids:
        lines.append(f"id: {index}")
    lines.append(f"event: {entry.event}")
    lines.append(f"data: {text}")
    return ("\n".join(lines) + "\n\n").encode()


def _stream(
    self: ApiHandler, record: TaskRecord, writer: StreamWriter, faults: Dict[str, Fault]
) -> None:
    emulator = self.emulator
    if emulator.sse_retry is not None:
        writer.write(f"retry: {int(emulator.sse_retry)}\n\n".encode())
    if "error_event" in faults:
        message = faults["error_event"].get("message", "failed to fetch task status")
        writer.write(f"event: error\ndata: {json.dumps({'message': message})}\n\n".encode())
    if "keepalive_only" in faults:
        _keepalives_only(self, writer, faults["keepalive_only"])
        return
    first, index = _start(self, record)
    sent = 0
    stall = faults.get("stall")
    malformed = faults.get("malformed_json")
    drop = faults.get("drop")
    last_write = time.monotonic()
    while True:
        if first:
            position = first.pop(0)
        else:
            position = index
            timeline = record.timeline
            if position >= len(timeline):
                return  # cannot happen: every timeline ends with a terminal entry
            entry = timeline[position]
            if emulator.clock.now() < entry.time:
                waited = _wait_for(self, record, entry, last_write)
                if waited == "keepalive":
                    writer.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
                elif waited == "stop":
                    raise Dropped()
                continue  # the time came, or the timeline changed (a cancel): look again
            index += 1
        entry = record.timeline[position]
        if entry.event in TERMINAL and "no_terminal" in faults:
            return
        if stall is not None and sent == int(stall.get("after_events", 0)):
            if _sleep(emulator, float(stall.get("seconds", 5.0))):
                raise Dropped()
            stall = None
        is_malformed = malformed is not None and sent == int(malformed.get("after_events", 0))
        payload = _event_bytes(entry, position, emulator, is_malformed)
        emulator._record_write(record.id, position, time.monotonic())
        writer.write(payload)
        last_write = time.monotonic()
        sent += 1
        if drop is not None and drop.get("after_events") is not None:
            if sent >= int(drop.get("after_events")):
                writer.cut()
        if entry.event in TERMINAL:
            return


def _start(self: ApiHandler, record: TaskRecord) -> Tuple[List[int], int]:
    """What a new stream sends first, and where it continues live.

    With ``Last-Event-ID`` (when ids are on): nothing up front, then every
    event after that id. Otherwise, as the documentation describes a fresh
    stream: one ``status`` event for the task's current state, then live
    events (a finished task gets its terminal event and the stream ends).
    """
    last_id = self.headers.get("Last-Event-ID")
    if self.emulator.sse_ids and last_id is not None and last_id.strip().isdigit():
        return [], min(int(last_id) + 1, len(record.timeline) - 1)
    if self.emulator.sse_history == "full":
        return [], 0
    happened = record.entries_until(self.emulator.clock.now())
    if not happened:
        return [], 0
    last = len(happened) - 1
    if happened[-1].event in TERMINAL:
        return [last], last + 1
    status_index = max(i for i, e in enumerate(happened) if e.event == "status")
    return [status_index], last + 1


def _wait_for(self: ApiHandler, record: TaskRecord, entry: Entry, last_write: float) -> str:
    emulator = self.emulator
    timeline = record.timeline
    interval = emulator.keepalive_interval
    max_real = None
    if interval is not None:
        max_real = max(0.0, last_write + interval - time.monotonic())
    reached = emulator.clock.wait_until(
        entry.time,
        interrupted=lambda: emulator._stopping() or record.timeline is not timeline,
        max_real=max_real,
    )
    if emulator._stopping():
        return "stop"
    if reached or record.timeline is not timeline:
        return "ready"
    return "keepalive" if interval is not None else "ready"


def _keepalives_only(self: ApiHandler, writer: StreamWriter, fault: Fault) -> None:
    interval = float(fault.get("interval", 0.05))
    seconds = fault.get("seconds")
    end = None if seconds is None else time.monotonic() + float(seconds)
    while end is None or time.monotonic() < end:
        writer.write(b": keep-alive\n\n")
        if _sleep(self.emulator, interval):
            raise Dropped()


def _sleep(emulator: Any, seconds: float) -> bool:
    """Sleep in real time unless the emulator stops; True when it stopped."""
    with emulator.clock.condition:
        return bool(emulator.clock.condition.wait_for(emulator._stopping, timeout=seconds))


# --- webhooks (management API) ---------------------------------------------------------------


@_route("POST", r"/api/v1/webhooks", "webhooks")
def create_webhook(self: ApiHandler) -> None:
    body = self.read_json()
    if body is None:
        return
    problem = self.emulator._validate_webhook(body, creating=True)
    if problem:
        self.send_error_json(400, "invalid_webhook", problem)
        return
    self.send_json(201, self.emulator._create_webhook(body))


@_route("GET", r"/api/v1/webhooks", "webhooks")
def list_webhooks(self: ApiHandler) -> None:
    items = [
        self.emulator._webhook_json(h, secret=False) for h in self.emulator._webhooks.values()
    ]
    self.page(items, "webhook_list")


@_route("GET", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def get_webhook(self: ApiHandler, hook: str) -> None:
    found = self.emulator._webhooks.get(hook)
    if found is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, self.emulator._webhook_json(found, secret=False))


@_route("PUT", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def update_webhook(self: ApiHandler, hook: str) -> None:
    body = self.read_json()
    if body is None:
        return
    found = self.emulator._webhooks.get(hook)
    if found is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    problem = self.emulator._validate_webhook(body, creating=False)
    if problem:
        self.send_error_json(400, "invalid_webhook", problem)
        return
    for key in ("display_name", "webhook_url", "webhook_events", "is_active"):
        if key in body:
            found[key] = body[key]
    found["updated_at"] = self.emulator._wall(self.emulator.clock.now())
    self.send_json(200, self.emulator._webhook_json(found, secret=False))


@_route("DELETE", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def delete_webhook(self: ApiHandler, hook: str) -> None:
    if self.emulator._webhooks.pop(hook, None) is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, {"deleted": True})


@_route("POST", r"/api/v1/webhooks/(?P<hook>[^/]+)/rotate-secret", "webhooks")
def rotate_secret(self: ApiHandler, hook: str) -> None:
    self.read_body()
    found = self.emulator._webhooks.get(hook)
    if found is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    found["webhook_secret"] = self.emulator._new_secret()
    self.send_json(200, {"webhook_secret": found["webhook_secret"]})
