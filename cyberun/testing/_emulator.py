"""CyberunEmulator: a real local Cyberun server for tests, demos and development."""

from __future__ import annotations

import base64
import errno
import json
import random
import secrets
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._api import ApiHandler
from ._clock import Clock, ManualClock, ScaledClock
from ._faults import Fault, FaultBook
from ._http import RecordedRequest, Server
from ._storage import StorageHandler, sign_url
from ._webhooks import DeliveryRecord, WebhookDispatcher
from ._world import (
    Entry,
    OutputFile,
    TaskRecord,
    WorkflowSpec,
    builtin_workflows,
    comfy_script,
    failing_script,
    png_bytes,
    rfc3339,
    seed_for,
)

__all__ = ["CyberunEmulator"]


class CyberunEmulator:
    """An emulator of the Cyberun API on loopback, with lifecycle simulation and faults.

    Use it as a context manager (or call
    [`start`][cyberun.testing.CyberunEmulator.start] and
    [`stop`][cyberun.testing.CyberunEmulator.stop]):

    ```python
    import cyberun
    from cyberun.testing import CyberunEmulator

    with CyberunEmulator(time_scale=0.02) as server:
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            result = client.run("text-to-image", {"prompt": "a fox"}).wait()
    assert result.task_status == "completed"
    ```

    Args:
        time_scale: real seconds per emulated second; ``0.02`` runs tasks
            fifty times faster than real time. Ignored with ``clock``.
        url_ttl: lifetime of download URLs, in emulated seconds.
        seed: makes generated content and ids reproducible.
        host: the API listener's address (loopback).
        port: the API listener's port; 0 picks a free one.
        storage_host: the storage listener's address: another loopback host,
            so that "credentials never go to storage" is tested for real. If
            it cannot be bound (macOS has only 127.0.0.1 by default), the
            storage listener binds ``host`` and is addressed as ``localhost``,
            still a different host name for clients.
        storage_port: the storage listener's port; 0 picks a free one.
        clock: a [`ManualClock`][cyberun.testing.ManualClock] to drive time by
            hand with [`advance`][cyberun.testing.CyberunEmulator.advance].
        sse_ids: send ``id:`` lines (event indexes) and replay what follows
            the ``Last-Event-ID`` a reconnect sends. Off by default: the API
            documentation promises neither.
        sse_retry: send a ``retry:`` line (milliseconds) at the start of streams
            (the documentation promises none; None sends none).
        sse_framing: ``"chunked"`` (default) or ``"close"`` (close-delimited).
        sse_history: where a new stream (without a replayable ``Last-Event-ID``)
            starts: ``"status"`` (default: one ``status`` event for the task's
            current state, then live events; a finished task gets its terminal
            event) or ``"full"`` (every event since the task began).
        keepalive_interval: send ``: keep-alive`` comments after this many
            real seconds of silence on a stream; None sends none.
        max_upload_size: the ``files/presign`` size limit in bytes (500 MB).

    Attributes:
        base_url: the API's host root, e.g. ``http://127.0.0.1:PORT``.
        storage_url: the storage listener's root.
        api_key: an ``sk-`` integration key the emulator accepts.
        device_key: a ``dk-`` device key.
        jwt: a session JWT (send it with ``X-Team-ID: team_id``).
        team_id: the team the credentials belong to.
        requests: every API request received, credentials redacted.
        storage_requests: every storage request received.
        stream_log: ``(task_id, event_index, monotonic_time)`` for every event
            written to a stream, the moment its bytes were handed to the socket.
        webhook_deliveries: every webhook delivery attempt.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        url_ttl: float = 3600.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_host: str = "127.0.0.2",
        storage_port: int = 0,
        clock: Optional[Clock] = None,
        sse_ids: bool = False,
        sse_retry: Optional[int] = None,
        sse_framing: str = "chunked",
        sse_history: str = "status",
        keepalive_interval: Optional[float] = None,
        max_upload_size: int = 500 * 1024 * 1024,
        api_key: Optional[str] = None,
    ) -> None:
        if sse_framing not in ("chunked", "close"):
            raise ValueError("sse_framing must be 'chunked' or 'close'")
        if sse_history not in ("status", "full"):
            raise ValueError("sse_history must be 'status' or 'full'")
        self.sse_history = sse_history
        self.clock: Clock = clock or ScaledClock(time_scale)
        self.url_ttl = url_ttl
        self.seed = seed
        self.host = host
        self.port = port
        self.storage_host = storage_host
        self.storage_port = storage_port
        self.sse_ids = sse_ids
        self.sse_retry = sse_retry
        self.sse_framing = sse_framing
        self.keepalive_interval = keepalive_interval
        self.max_upload_size = max_upload_size
        self.faults: FaultBook = FaultBook()
        self.requests: List[RecordedRequest] = []
        self.storage_requests: List[RecordedRequest] = []
        self.webhook_deliveries: List[DeliveryRecord] = []
        self.stream_log: List[Tuple[str, int, float]] = []
        self.team_id: str = str(uuid.uuid4())
        self.api_key: str = api_key or f"sk-emu-{secrets.token_hex(16)}"
        self.device_key: str = f"dk-emu-{secrets.token_hex(16)}"
        self.jwt: str = _fake_jwt(self.team_id)
        self._lock = threading.RLock()
        self._stop_flag = False
        self._signing_key = secrets.token_bytes(32)
        self._wall_base = datetime.now(timezone.utc).replace(microsecond=0)
        self._workflows: Dict[str, WorkflowSpec] = {}
        self._tasks: Dict[str, TaskRecord] = {}
        self._objects: Dict[str, Tuple[bytes, str]] = {}
        self._upload_sizes: Dict[str, int] = {}
        self._webhooks: Dict[str, Dict[str, Any]] = {}
        self._rng = random.Random(seed)
        self._dispatcher = WebhookDispatcher(self)
        self._servers: List[Tuple[Server, threading.Thread]] = []
        self.base_url: str = ""
        self.storage_url: str = ""
        for spec in builtin_workflows():
            self._workflows[spec.id] = spec

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CyberunEmulator:
        """Bind both listeners and start serving; returns self."""
        if self._servers:
            return self
        api = Server((self.host, self.port), ApiHandler, self, "api")
        try:
            storage = Server(
                (self.storage_host, self.storage_port), StorageHandler, self, "storage"
            )
            storage_name = self.storage_host
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EINVAL):
                api.server_close()
                raise
            storage = Server((self.host, self.storage_port), StorageHandler, self, "storage")
            storage_name = "localhost"
        self.base_url = f"http://{_url_host(self.host)}:{api.server_address[1]}"
        self.storage_url = f"http://{_url_host(storage_name)}:{storage.server_address[1]}"
        for server in (api, storage):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator-{server.listener}-listener",
                daemon=True,
            )
            thread.start()
            self._servers.append((server, thread))
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for every thread to end."""
        self._stop_flag = True
        self.clock.notify()
        for server, _ in self._servers:
            server.shutdown()
        for server, _ in self._servers:
            server.close_connections()
        for server, thread in self._servers:
            server.join_threads(5.0)
            server.server_close()
            thread.join(5.0)
        self._dispatcher.join(5.0)
        self._servers.clear()

    def __enter__(self) -> CyberunEmulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<CyberunEmulator {self.base_url or '(not started)'}>"

    def _stopping(self) -> bool:
        return self._stop_flag

    # -- control surface -----------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        route: Optional[str] = None,
        task_id: Optional[str] = None,
        times: Optional[int] = 1,
        **params: Any,
    ) -> Fault:
        """Make something go wrong on purpose.

        Args:
            fault: a name from ``cyberun.testing.FAULTS`` (``"drop"``,
                ``"status"``, ``"stall"``, ...).
            route: limit it to one route (``"events"``, ``"result"``,
                ``"download"``, ... see ``cyberun.testing.ROUTES``).
            task_id: limit it to one task.
            times: how many requests (or streams) it affects; None for all
                until [`clear_faults`][cyberun.testing.CyberunEmulator.clear_faults].
            params: the fault's parameters, e.g. ``status=503, retry_after=1``.
        """
        return self.faults.add(
            Fault(fault, route=route, task_id=task_id, times=times, params=params)
        )

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    def clear_logs(self) -> None:
        """Forget the request and delivery logs."""
        with self._lock:
            self.requests.clear()
            self.storage_requests.clear()
            self.webhook_deliveries.clear()
            self.stream_log.clear()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (only with ``clock=ManualClock()``)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs CyberunEmulator(clock=ManualClock())")
        self.clock.advance(seconds)

    def now(self) -> float:
        """Emulated seconds since the emulator was created."""
        return self.clock.now()

    def add_workflow(
        self,
        slug: str,
        *,
        display_name: Optional[str] = None,
        tool_type: str = "comfyui",
        parameters: Iterable[Dict[str, Any]] = (),
        steps: int = 10,
        step_seconds: float = 0.1,
        outputs: int = 1,
        fail_with: Optional[str] = None,
        version: int = 1,
        dispatch_target: str = "agent",
        status: str = "active",
        output_keys: Optional[Iterable[str]] = None,
    ) -> Dict[str, Any]:
        """Add a workflow; returns its wire JSON (with its ``id``).

        Args:
            slug: the slug (``slug@version`` selects ``version`` when running).
            display_name: the name shown in lists (default: the slug).
            tool_type: ``"comfyui"`` or ``"nerfstudio"``.
            parameters: ParameterDef dictionaries, as the API documents them.
            steps: progress ticks before completion.
            step_seconds: emulated seconds per tick.
            outputs: result files (more than one puts them in ``download_urls``).
            fail_with: make every task fail with this error message.
            version: the workflow version.
            dispatch_target: ``"agent"`` or ``"comfy_cloud"``.
            status: ``"active"`` or ``"disabled"``.
            output_keys: the keys of the outputs in ``download_urls`` (any
                strings, hostile ones included); implies several outputs.
        """
        keys = list(output_keys) if output_keys is not None else None
        if keys is not None:
            outputs = len(keys)
        cloud = outputs > 1 or dispatch_target == "comfy_cloud" or keys is not None

        def make_outputs(task: TaskRecord) -> List[OutputFile]:
            prefix = "outputs" if cloud else "tasks"
            return [
                OutputFile(
                    key=(keys[i] if keys is not None else f"9.images.{i}") if cloud else "",
                    storage_key=f"{prefix}/{task.id}/output_{i + 1:05d}_.png",
                    content=png_bytes(task.seed * 31 + i),
                    content_type="image/png",
                )
                for i in range(outputs)
            ]

        spec = WorkflowSpec(
            slug=slug,
            version=version,
            display_name=display_name or slug,
            description=f"Added by the test: {slug}",
            tool_type=tool_type,
            parameters=list(parameters),
            script=failing_script if fail_with else comfy_script(step_seconds, steps),
            outputs=make_outputs,
            dispatch_target="comfy_cloud" if cloud else dispatch_target,
            workflow_status=status,
            created_at=self.clock.now(),
        )
        if fail_with:
            spec.script = _failing_with(fail_with)
        with self._lock:
            self._workflows[spec.id] = spec
        return self._workflow_json(spec, "jwt")

    def create_task(self, workflow: str, parameters: Optional[Dict[str, Any]] = None) -> str:
        """Start a task directly (no HTTP); returns its id."""
        spec = self._workflow_by_slug(workflow) or self._workflows.get(workflow)
        if spec is None:
            raise KeyError(f"no workflow {workflow!r}")
        return self._create_task(spec, parameters or {}, "api_key", {}).id

    def task_status(self, task_id: str) -> str:
        """A task's current status (no HTTP)."""
        return self._tasks[task_id].current(self.clock.now())[0]

    def finish_time(self, task_id: str) -> float:
        """The emulated time at which the task ends (given no cancel)."""
        return self._tasks[task_id].timeline[-1].time

    # -- internals used by the handlers ---------------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            (self.requests if record.listener == "api" else self.storage_requests).append(record)

    def _record_write(self, task_id: str, index: int, when: float) -> None:
        with self._lock:
            self.stream_log.append((task_id, index, when))

    def _credential_kind(self, token: str) -> Optional[str]:
        if token == self.api_key:
            return "integration"
        if token == self.device_key:
            return "device"
        if token == self.jwt:
            return "jwt"
        return None

    def _wall_datetime(self, emulated: float) -> datetime:
        return self._wall_base + timedelta(seconds=emulated)

    def _wall(self, emulated: float) -> str:
        return rfc3339(self._wall_base, emulated)

    def _workflow_by_slug(self, slug: str) -> Optional[WorkflowSpec]:
        name, _, version = slug.partition("@")
        candidates = [w for w in self._workflows.values() if w.slug == name]
        if version:
            if not version.isdigit():
                return None
            candidates = [w for w in candidates if w.version == int(version)]
        if not candidates:
            return None
        return max(candidates, key=lambda spec: spec.version)

    def _latest_workflows(self) -> List[WorkflowSpec]:
        latest: Dict[str, WorkflowSpec] = {}
        for spec in self._workflows.values():
            if spec.slug not in latest or spec.version > latest[spec.slug].version:
                latest[spec.slug] = spec
        return sorted(latest.values(), key=lambda w: w.slug)

    def _workflow_json(self, spec: WorkflowSpec, caller: str) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "id": spec.id,
            "workflow_slug": spec.slug,
            "display_name": spec.display_name,
            "version": spec.version,
            "workflow_status": spec.workflow_status,
            "created_at": self._wall(spec.created_at),
            "updated_at": self._wall(spec.created_at),
            "description": spec.description,
            "parameters": spec.parameters,
            "required_labels": ["gpu"],
            "task_timeout": spec.task_timeout,
            "max_retries": 0,
            "preferred_gpu": "NVIDIA GeForce RTX 4090",
            "default_dispatch_target": spec.dispatch_target,
            "min_vram_gb": 12,
            "required_models": [],
            "tool_type": spec.tool_type,
        }
        if caller != "integration":  # sk- callers do not see the workflow JSON
            data["workflow_json"] = {
                "3": {"class_type": "KSampler"},
                "9": {"class_type": "SaveImage"},
            }
        return data

    def _check_parameters(self, spec: WorkflowSpec, parameters: Dict[str, Any]) -> List[str]:
        problems = []
        for definition in spec.parameters:
            key = definition["key"]
            if definition.get("required") and key not in parameters:
                problems.append(f"parameter {key} is required")
            elif key in parameters and definition.get("type") == "file":
                value = parameters[key]
                if not isinstance(value, str) or value not in self._objects:
                    problems.append(f"parameter {key} must be the file_key of an uploaded file")
        return problems

    def _create_task(
        self, spec: WorkflowSpec, parameters: Dict[str, Any], source: str, options: Dict[str, Any]
    ) -> TaskRecord:
        with self._lock:
            task_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            task = TaskRecord(
                id=task_id,
                workflow=spec,
                parameters=dict(parameters),
                created=self.clock.now(),
                source=source,
                team_id=self.team_id,
                seed=seed_for(self.seed, task_id),
                options=options,
            )
            task.outputs = spec.outputs(task)
            for output in task.outputs:
                self._objects[output.storage_key] = (output.content, output.content_type)
            task.timeline = [
                Entry(task.created + e.time, e.event, e.data, e.status) for e in spec.script(task)
            ]
            self._tasks[task_id] = task
        self.clock.notify()
        return task

    def _cancel(self, task: TaskRecord) -> None:
        with self._lock:
            changed = task.cancel(self.clock.now())
        if changed:
            self.clock.notify()

    def _task_json(self, task: TaskRecord) -> Dict[str, Any]:
        now = self.clock.now()
        status, terminal = task.current(now)
        started = task.time_of("running")
        queued = task.time_of("queued")
        assigned = queued is not None and queued <= now
        error = (
            terminal.data.get("error", "")
            if terminal is not None and terminal.event == "failed"
            else ""
        )
        return {
            "id": task.id,
            "workflow_id": task.workflow.id,
            "task_source": task.source,
            "task_status": status,
            "created_at": self._wall(task.created),
            "task_error": error,
            "retry_count": 0,
            "started_at": self._wall(started) if started is not None and started <= now else None,
            "completed_at": self._wall(terminal.time) if terminal is not None else None,
            "agent_id": "agent-gpu-01" if assigned else None,
            "agent_labels": ["gpu", "rtx4090"] if assigned else None,
            "gateway_id": "gw-emulator" if assigned else None,
            "gpu_type": "NVIDIA GeForce RTX 4090" if assigned else None,
            "dispatch_target": task.options.get("dispatch_target", task.workflow.dispatch_target),
            "target_pool": task.options.get("target_pool", "team"),
            "tool_type": task.workflow.tool_type,
        }

    def _result_json(self, task: TaskRecord, ttl: Optional[float] = None) -> Dict[str, Any]:
        now = self.clock.now()
        status, terminal = task.current(now)
        result: Dict[str, Any] = {
            "id": task.id,
            "task_status": status,
            "task_output": None,
            "download_url": None,
            "download_urls": None,
            "expires_at": None,
            "task_error": "",
            "completed_at": self._wall(terminal.time) if terminal is not None else None,
        }
        if terminal is None or terminal.event == "cancelled":
            return result
        if terminal.event == "failed":
            result["task_error"] = terminal.data.get("error", "")
            return result
        lifetime = self.url_ttl if ttl is None else ttl
        urls = [(f.key, sign_url(self, "GET", f.storage_key, lifetime)) for f in task.outputs]
        result["task_output"] = terminal.data.get("output")
        result["expires_at"] = self._wall(now + lifetime)
        if urls:
            # The primary output; cloud tasks list every output by key too.
            result["download_url"] = urls[0][1]
            if task.workflow.dispatch_target == "comfy_cloud":
                result["download_urls"] = dict(urls)
        return result

    def _presign_upload(self, name: str, size: int, content_type: str) -> Dict[str, Any]:
        safe = (
            "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[-100:] or "upload"
        )
        key = f"inputs/{uuid.uuid4().hex}/{safe}"
        url = sign_url(self, "PUT", key, 3600.0, ("content-length", "host", "if-none-match"))
        with self._lock:
            self._upload_sizes[url.split("?")[0].split(self.storage_url, 1)[1]] = size
        return {
            "file_key": key,
            "upload_url": url,
            "upload_headers": {"Content-Length": str(size), "If-None-Match": "*"},
        }

    def _delivery_payload(self, task: Any, event_type: str) -> Dict[str, Any]:
        result = self._result_json(task)
        return {
            "event_type": event_type,
            "task_id": task.id,
            "task_status": result["task_status"],
            "task_output": result["task_output"],
            "task_error": result["task_error"],
            "timestamp": result["completed_at"],
        }

    def _new_secret(self) -> str:
        return "whsec_" + secrets.token_hex(24)

    def _validate_webhook(self, body: Any, *, creating: bool) -> Optional[str]:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        if creating:
            for key in ("display_name", "webhook_url", "webhook_events"):
                if key not in body:
                    return f"{key} is required"
        if "webhook_url" in body:
            url = body["webhook_url"]
            loopback = isinstance(url, str) and url.startswith(("http://127.", "http://localhost"))
            if not isinstance(url, str) or not (url.startswith("https://") or loopback):
                return "webhook_url must be an https:// URL"
        if "webhook_events" in body:
            events = body["webhook_events"]
            allowed = {"task.completed", "task.failed"}
            if not isinstance(events, list) or not events or not set(events) <= allowed:
                return "webhook_events must be a non-empty subset of task.completed, task.failed"
        return None

    def _create_webhook(self, body: Dict[str, Any]) -> Dict[str, Any]:
        hook_id = str(uuid.uuid4())
        now = self.clock.now()
        hook = {
            "id": hook_id,
            "display_name": body["display_name"],
            "webhook_url": body["webhook_url"],
            "webhook_events": list(body["webhook_events"]),
            "webhook_secret": self._new_secret(),
            "is_active": True,
            "created_at": self._wall(now),
            "updated_at": self._wall(now),
            "_created": now,
        }
        with self._lock:
            self._webhooks[hook_id] = hook
        self._dispatcher.ensure_started()
        return self._webhook_json(hook, secret=True)

    @staticmethod
    def _webhook_json(hook: Dict[str, Any], *, secret: bool) -> Dict[str, Any]:
        data = {k: v for k, v in hook.items() if not k.startswith("_")}
        if not secret:
            data.pop("webhook_secret", None)
        return data


def _failing_with(message: str) -> Any:
    def script(task: TaskRecord) -> List[Entry]:
        entries = failing_script(task)
        entries[-1].data["error"] = message
        return entries

    return script


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _fake_jwt(team_id: str) -> str:
    def b64(data: Union[bytes, str]) -> str:
        raw = data.encode() if isinstance(data, str) else data
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = b64(json.dumps({"sub": "emulator-user", "teams": [team_id]}))
    return f"{header}.{payload}.{b64(secrets.token_bytes(32))}"
