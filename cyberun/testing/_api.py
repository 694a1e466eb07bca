"""The emulator's API listener: every runtime endpoint and the webhook management API."""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from ._faults import Fault
from ._http import Handler
from ._records import TaskRecord, WorkflowSpec
from ._stream import serve_events

__all__ = ["ApiHandler"]


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
        before = self.world.faults.take(
            ("latency", "status", "reset"),
            route,
            task_id,
            # A reset after N bytes of a stream is the stream's to apply; one
            # after accepting a run is the run's.
            where=lambda f: not f.get("after_accept") and f.get("after_bytes") is None,
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
        world = self.world
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.read_body()
            self.send_error_json(401, "unauthorized", "missing bearer token")
            return None
        token = token.strip()
        kind = world.credential_kind(token)
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
            if team != world.team_id:
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
            "team": world.team_id,
            "source": "jwt" if kind == "jwt" else "api_key",
        }

    # -- helpers -----------------------------------------------------------------------------

    def task_or_404(self, task_id: str) -> Optional[TaskRecord]:
        task = self.world.task(task_id)
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
    workflow = self.world.workflow_by_slug(slug)
    body = self.read_json()
    if body is None:
        return
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {slug} not found")
        return
    _run(self, workflow, body)


@_route("POST", r"/api/v1/r/workflows/(?P<workflow_id>[^/]+)/run", "run")
def run_by_id(self: ApiHandler, workflow_id: str) -> None:
    workflow = self.world.workflow_by_id(workflow_id)
    body = self.read_json()
    if body is None:
        return
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {workflow_id} not found")
        return
    _run(self, workflow, body)


def _run(self: ApiHandler, workflow: WorkflowSpec, body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("parameters", {}), dict):
        self.send_error_json(400, "invalid_request", 'body must be {"parameters": {...}}')
        return
    if workflow.workflow_status != "active":
        self.send_error_json(409, "workflow_disabled", f"workflow {workflow.slug} is disabled")
        return
    problems = self.world.check_parameters(workflow, body.get("parameters", {}))
    if problems:
        self.send_error_json(400, "invalid_parameters", "; ".join(problems))
        return
    options = {
        k: body[k]
        for k in ("dispatch_target", "target_pool", "submitter_region", "tool_type")
        if k in body
    }
    task = self.world.create_task(
        workflow, body.get("parameters", {}), self.principal["source"], options
    )
    self.record.task_id = task.id
    self.world.fire("created", self.record, task.id)
    # The task exists now; an `after_accept` fault cuts (or replaces) the
    # answer that would have told the client so: the double-billing case.
    after = self.world.take_faults(("reset", "status"), "run", task.id, after_accept=True)
    if self.apply_answer_faults(after):
        self.send_json(202, {"task_id": task.id})


@_route("GET", r"/api/v1/r/workflows", "workflows")
def list_workflows(self: ApiHandler) -> None:
    items = [
        self.world.workflow_json(w, self.principal["kind"]) for w in self.world.latest_workflows()
    ]
    self.page(items, "workflow_list")


@_route("GET", r"/api/v1/r/workflows/slug/(?P<slug>[^/]+)", "workflow")
def get_workflow_by_slug(self: ApiHandler, slug: str) -> None:
    workflow = self.world.workflow_by_slug(slug)
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {slug} not found")
        return
    self.send_json(200, self.world.workflow_json(workflow, self.principal["kind"]))


@_route("GET", r"/api/v1/r/workflows/(?P<workflow_id>[^/]+)", "workflow")
def get_workflow(self: ApiHandler, workflow_id: str) -> None:
    workflow = self.world.workflow_by_id(workflow_id)
    if workflow is None:
        self.send_error_json(404, "workflow_not_found", f"workflow {workflow_id} not found")
        return
    self.send_json(200, self.world.workflow_json(workflow, self.principal["kind"]))


# --- tasks ---------------------------------------------------------------------------------


@_route("GET", r"/api/v1/r/tasks", "tasks")
def list_tasks(self: ApiHandler) -> None:
    status = self.query.get("status")
    items = [self.world.task_json(t) for t in self.world.tasks()]
    if status:
        items = [item for item in items if item["task_status"] == status]
    self.page(items, "task_list")


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)", "task")
def get_task(self: ApiHandler, task: str) -> None:
    record = self.task_or_404(task)
    if record is not None:
        self.send_bytes(200, self.world.task_answer(record), "application/json")


@_route("POST", r"/api/v1/r/tasks/(?P<task>[^/]+)/cancel", "cancel")
def cancel_task(self: ApiHandler, task: str) -> None:
    self.read_body()
    record = self.task_or_404(task)
    if record is not None:
        self.world.cancel(record)
        self.send_json(200, {"cancelled": True})


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)/result", "result")
def get_result(self: ApiHandler, task: str) -> None:
    record = self.task_or_404(task)
    if record is None:
        return
    ttl = None
    for fault in self.world.take_faults(("expire_urls",), "result", task):
        ttl = float(fault.get("seconds", 0))
    self.send_bytes(200, self.world.result_answer(record, ttl=ttl), "application/json")


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
    elif size > self.world.max_upload_size:
        problems.append(f"file_size exceeds the {self.world.max_upload_size}-byte limit")
    if not isinstance(content_type, str) or not content_type:
        problems.append("content_type is required")
    if problems:
        self.send_error_json(400, "invalid_request", "; ".join(problems))
        return
    self.send_json(200, self.world.presign_upload(name, size, content_type))


# --- the event stream ---------------------------------------------------------------------


@_route("GET", r"/api/v1/r/tasks/(?P<task>[^/]+)/events", "events")
def stream_events(self: ApiHandler, task: str) -> None:
    record = self.task_or_404(task)
    if record is not None:
        serve_events(self, record)


# --- webhooks (management API) ---------------------------------------------------------------


@_route("POST", r"/api/v1/webhooks", "webhooks")
def create_webhook(self: ApiHandler) -> None:
    body = self.read_json()
    if body is None:
        return
    problem = self.world.validate_webhook(body, creating=True)
    if problem:
        self.send_error_json(400, "invalid_webhook", problem)
        return
    self.send_json(201, self.world.create_webhook(body))


@_route("GET", r"/api/v1/webhooks", "webhooks")
def list_webhooks(self: ApiHandler) -> None:
    self.page(self.world.webhooks_json(), "webhook_list")


@_route("GET", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def get_webhook(self: ApiHandler, hook: str) -> None:
    found = self.world.webhook_json(hook)
    if found is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, found)


@_route("PUT", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def update_webhook(self: ApiHandler, hook: str) -> None:
    body = self.read_json()
    if body is None:
        return
    if self.world.webhook_json(hook) is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    problem = self.world.validate_webhook(body, creating=False)
    if problem:
        self.send_error_json(400, "invalid_webhook", problem)
        return
    updated = self.world.update_webhook(hook, body)
    if updated is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, updated)


@_route("DELETE", r"/api/v1/webhooks/(?P<hook>[^/]+)", "webhooks")
def delete_webhook(self: ApiHandler, hook: str) -> None:
    if not self.world.delete_webhook(hook):
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, {"deleted": True})


@_route("POST", r"/api/v1/webhooks/(?P<hook>[^/]+)/rotate-secret", "webhooks")
def rotate_secret(self: ApiHandler, hook: str) -> None:
    self.read_body()
    secret = self.world.rotate_secret(hook)
    if secret is None:
        self.send_error_json(404, "webhook_not_found", f"webhook {hook} not found")
        return
    self.send_json(200, {"webhook_secret": secret})
