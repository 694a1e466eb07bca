"""The endpoint layer: one small method per API endpoint, on the request pipeline.

[`Endpoints`][cyberun.api.Endpoints] is what ``client.api`` returns. Each method
builds one URL and body and hands it to the request pipeline
(``cyberun._pipeline``), which sends it (authentication,
retries, redirects, errors) and decodes the answer. Nothing else lives here.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar

from ._bodies import ProgressBody
from ._convert import structure
from ._parameters import check_parameters, raise_for_parameters
from ._pipeline import UUID, Credentials, Pipeline, looks_like_jwt, segment
from .errors import APIError, DecodeError
from .models import Page, Task, TaskResult, UploadTarget, Webhook, Workflow
from .retry import RetryPolicy
from .transports._base import Body, Response, Timeout

__all__ = [
    "Credentials",
    "Endpoints",
    "check_parameters",
    "looks_like_jwt",
    "raise_for_parameters",
]

logger: logging.Logger = logging.getLogger("cyberun")

T = TypeVar("T")


class Endpoints(Pipeline):
    """One method per endpoint of the Cyberun API.

    Thread-safe: it holds no per-request state, so one instance serves many
    threads (as long as the transport does, which every built-in one does).

    Args:
        base_url: the host root, for example ``https://core.cyberun.cloud``
            (already normalised by the client).
        credentials: the credential to send to the API host.
        transport: the transport that sends requests.
        timeout: the default timeouts.
        retry: the retry policy for ordinary requests.
        user_agent_suffix: appended to the ``User-Agent`` (the transport name).
    """

    # -- tasks -----------------------------------------------------------------------

    def run_workflow(self, workflow: str, body: Mapping[str, Any]) -> str:
        """Start a workflow; return the new task's id.

        ``workflow`` is a workflow UUID, a slug or ``slug@version``. A slug is
        anything that is not a UUID.

        Raises:
            SubmissionUncertain: the request may have reached the server and
                no whole answer came back (or a 500, 502 or 504): the task
                may exist. Never retried; find it with ``Client.find_submitted``.
            RateLimited: still refused (429) once the retry policy gave up.
            ParameterError: a parameter is NaN or infinite.
        """
        if UUID.match(workflow):
            url = self.runtime_url(f"/workflows/{segment(workflow, 'workflow id')}/run")
        else:
            url = self.runtime_url(
                f"/workflows/slug/{segment(workflow, 'workflow slug', safe='@')}/run"
            )
        data = self.request_json(
            "POST",
            url,
            json_body=dict(body),
            idempotent=False,
            submission=workflow,
            what="a run answer",
        )
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise DecodeError(
                "the run answer has no task_id", what="run answer", snippet=repr(data)[:200]
            )
        return task_id

    def get_task(self, task_id: str) -> Task:
        """``GET /tasks/{id}``."""
        return self.get_model(
            self.runtime_url(f"/tasks/{segment(task_id, 'task id')}"), Task, "a task"
        )

    def list_tasks_page(
        self, page: int = 1, per_page: int = 20, status: Optional[str] = None
    ) -> Page[Task]:
        """One page of ``GET /tasks`` (newest first, as the server orders them)."""
        _check_page(page, per_page)
        query = {"current_page": page, "per_page": per_page, "status": status}
        return self.get_page(self.runtime_url("/tasks", query), Task, "task_list")

    def iter_tasks(
        self, *, status: Optional[str] = None, per_page: int = 20, limit: Optional[int] = None
    ) -> Iterator[Task]:
        """Every task, fetching pages lazily; stops at ``total_count`` or ``limit``."""
        _check_page(1, per_page)
        return _iterate(lambda page: self.list_tasks_page(page, per_page, status), per_page, limit)

    def cancel_task(self, task_id: str) -> None:
        """``POST /tasks/{id}/cancel``; a no-op on a finished task. Safe to repeat."""
        url = self.runtime_url(f"/tasks/{segment(task_id, 'task id')}/cancel")
        self.send("POST", url, idempotent=True).close()

    def get_result(self, task_id: str) -> TaskResult:
        """``GET /tasks/{id}/result``: output and fresh presigned links."""
        url = self.runtime_url(f"/tasks/{segment(task_id, 'task id')}/result")
        return self.get_model(url, TaskResult, "a task result")

    def open_events(
        self,
        task_id: str,
        *,
        last_event_id: Optional[str] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
    ) -> Response:
        """Open ``GET /tasks/{id}/events`` and return the streaming response."""
        headers = {"Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = self.runtime_url(f"/tasks/{segment(task_id, 'task id')}/events")
        return self.send(
            "GET",
            url,
            headers=headers,
            accept="text/event-stream",
            timeout=timeout,
            retry=retry,
        )

    # -- workflows --------------------------------------------------------------------

    def list_workflows_page(self, page: int = 1, per_page: int = 20) -> Page[Workflow]:
        """One page of ``GET /workflows``."""
        _check_page(page, per_page)
        query = {"current_page": page, "per_page": per_page}
        return self.get_page(self.runtime_url("/workflows", query), Workflow, "workflow_list")

    def iter_workflows(self, *, per_page: int = 50) -> Iterator[Workflow]:
        """Every workflow, fetching pages lazily."""
        _check_page(1, per_page)
        return _iterate(lambda page: self.list_workflows_page(page, per_page), per_page, None)

    def get_workflow(self, workflow: str) -> Workflow:
        """A workflow by UUID (``/workflows/{id}``) or by slug / ``slug@version``."""
        if UUID.match(workflow):
            url = self.runtime_url(f"/workflows/{segment(workflow, 'workflow id')}")
        else:
            url = self.runtime_url(
                f"/workflows/slug/{segment(workflow, 'workflow slug', safe='@')}"
            )
        return self.get_model(url, Workflow, "a workflow")

    # -- files ------------------------------------------------------------------------

    def presign_upload(self, file_name: str, file_size: int, content_type: str) -> UploadTarget:
        """``POST /files/presign``: where to PUT one input file."""
        body = {"file_name": file_name, "file_size": file_size, "content_type": content_type}
        data = self.request_json(
            "POST",
            self.runtime_url("/files/presign"),
            json_body=body,
            idempotent=True,
            what="a presign answer",
        )
        return structure(data, UploadTarget)

    def upload(
        self,
        target: UploadTarget,
        body: Body,
        *,
        size: int,
        on_progress: Optional[Callable[[int, int], None]] = None,
    ) -> None:
        """PUT a file to its presigned URL with exactly the signed headers, never the credential.

        The request carries the presign answer's ``upload_headers`` verbatim
        (they are signed) and nothing of the caller's session. A file object
        that can seek is re-sent from the start on a retry. A 412 on a retry
        means an earlier attempt already stored the object.
        """
        signed = dict(target.upload_headers)
        if not any(name.lower() == "content-length" for name in signed):
            signed["Content-Length"] = str(size)
        if on_progress is not None:
            body = ProgressBody(body, size, on_progress)
        try:
            self.send(
                "PUT",
                target.upload_url,
                body=body,
                signed_headers=signed,
                authenticate=False,
                idempotent=True,
                accept="*/*",
            ).close()
        except APIError as exc:
            if exc.status == 412 and any(name.lower() == "if-none-match" for name in signed):
                return  # an earlier attempt's PUT landed: the object is there
            raise

    def open_download(
        self,
        url: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
    ) -> Response:
        """GET a presigned storage URL; return the stream.

        Only the storage allow-list of ``headers`` is sent (``Range``,
        ``If-Range``), never the credential.
        """
        return self.send(
            "GET", url, headers=headers, authenticate=False, accept="*/*", timeout=timeout
        )

    # -- webhooks (management API: JWT with team id, or dk-) --------------------------

    def create_webhook(
        self, *, display_name: str, webhook_url: str, webhook_events: Sequence[str]
    ) -> Webhook:
        """``POST /api/v1/webhooks``."""
        body = {
            "display_name": display_name,
            "webhook_url": webhook_url,
            "webhook_events": list(webhook_events),
        }
        data = self.request_json(
            "POST", self.management_url("/webhooks"), json_body=body, what="a webhook"
        )
        return structure(data, Webhook)

    def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /api/v1/webhooks/{id}``."""
        url = self.management_url(f"/webhooks/{segment(webhook_id, 'webhook id')}")
        return self.get_model(url, Webhook, "a webhook")

    def list_webhooks_page(self, page: int = 1, per_page: int = 50) -> Page[Webhook]:
        """One page of ``GET /api/v1/webhooks``."""
        _check_page(page, per_page)
        query = {"current_page": page, "per_page": per_page}
        return self.get_page(self.management_url("/webhooks", query), Webhook, "webhook_list")

    def iter_webhooks(self, *, per_page: int = 50) -> Iterator[Webhook]:
        """Every webhook, fetching pages lazily."""
        _check_page(1, per_page)
        return _iterate(lambda page: self.list_webhooks_page(page, per_page), per_page, None)

    def update_webhook(self, webhook_id: str, changes: Mapping[str, Any]) -> Webhook:
        """``PUT /api/v1/webhooks/{id}`` with the fields to change."""
        url = self.management_url(f"/webhooks/{segment(webhook_id, 'webhook id')}")
        data = self.request_json("PUT", url, json_body=dict(changes), what="a webhook")
        return structure(data, Webhook)

    def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /api/v1/webhooks/{id}``."""
        url = self.management_url(f"/webhooks/{segment(webhook_id, 'webhook id')}")
        self.send("DELETE", url).close()

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """``POST /api/v1/webhooks/{id}/rotate-secret``; the old secret stops working at once."""
        url = self.management_url(f"/webhooks/{segment(webhook_id, 'webhook id')}/rotate-secret")
        data = self.request_json("POST", url, what="a rotated secret")
        secret = data.get("webhook_secret") if isinstance(data, dict) else None
        if not isinstance(secret, str) or not secret:
            raise DecodeError("the rotate-secret answer has no webhook_secret", what="secret")
        return secret


#: The API's bounds on ``per_page`` (every list endpoint).
PER_PAGE_RANGE = (1, 100)


def _check_page(page: int, per_page: int) -> None:
    """Refuse a page request the API would refuse, before anything is sent."""
    low, high = PER_PAGE_RANGE
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not low <= per_page <= high:
        raise ValueError(f"per_page must be from {low} to {high}, got {per_page!r}")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be 1 or more, got {page!r}")


def _iterate(fetch: Callable[[int], Page[T]], per_page: int, limit: Optional[int]) -> Iterator[T]:
    # Stops at total_count, at an empty page, at a page that repeats the
    # previous one (a server ignoring the page number), or at `limit`:
    # never loops forever on an inconsistent server.
    seen = 0
    page_number = 1
    last_first: Any = None
    max_pages: Optional[int] = None
    while True:
        page = fetch(page_number)
        if not page.items:
            return
        first = getattr(page.items[0], "id", None)
        if page_number > 1 and first is not None and first == last_first:
            logger.warning("the server returned page %d twice; stopping", page_number)
            return
        last_first = first
        for item in page.items:
            yield item
            seen += 1
            if limit is not None and seen >= limit:
                return
        if max_pages is None:
            max_pages = page.page_count or 1
        if seen >= page.total_count or page_number >= max_pages:
            return
        page_number += 1
