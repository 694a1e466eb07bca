"""The emulated world: workflows, tasks, stored files, webhooks, the clock and the faults.

One object holds all of the emulator's state behind methods; the HTTP
handlers (``_api``, ``_storage``) and the webhook dispatcher call those
methods and never reach into each other. Everything here writes the wire
format of the API documentation directly, never the SDK's models.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import secrets
import tempfile
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Protocol, Tuple
from urllib.parse import quote, urlencode

from ._builtins import builtin_workflows, seed_for
from ._clock import Clock
from ._faults import Fault, FaultBook
from ._hooks import HookBook, HookCall
from ._records import (
    DeliveryRecord,
    Entry,
    RecordedRequest,
    StoredObject,
    TaskRecord,
    WorkflowSpec,
)

__all__ = ["BUCKET", "StreamOptions", "World"]

BUCKET = "cyberun-emulator"

#: Retention the API documents: inputs 1 day, outputs 7 days (emulated seconds).
INPUT_RETENTION = 86_400.0
OUTPUT_RETENTION = 7 * 86_400.0


class Readable(Protocol):
    """Anything with ``read(n)``: a request body being received."""

    def read(self, size: int = ..., /) -> bytes:
        """Up to ``size`` bytes (fewer at the end)."""
        ...


class StreamOptions:
    """How event streams are written (see ``CyberunEmulator``'s arguments)."""

    def __init__(
        self,
        *,
        ids: bool,
        retry: Optional[int],
        framing: str,
        history: str,
        keepalive_interval: Optional[float],
    ) -> None:
        self.ids = ids
        self.retry = retry
        self.framing = framing
        self.history = history
        self.keepalive_interval = keepalive_interval


class World:
    """Every piece of the emulator's state, and the operations the routes perform on it."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int,
        url_ttl: float,
        stream: StreamOptions,
        max_upload_size: int,
        uploads: str,
        upload_dir: Optional[Path],
        list_order: str,
        input_retention: float,
        api_key: str,
        device_key: str,
        jwt: str,
        team_id: str,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.url_ttl = url_ttl
        self.stream = stream
        self.max_upload_size = max_upload_size
        self.uploads = uploads
        self.list_order = list_order
        self.input_retention = input_retention
        self.api_key = api_key
        self.device_key = device_key
        self.jwt = jwt
        self.team_id = team_id
        self.faults: FaultBook = FaultBook()
        self.hooks: HookBook = HookBook()
        self.requests: List[RecordedRequest] = []
        self.storage_requests: List[RecordedRequest] = []
        self.webhook_deliveries: List[DeliveryRecord] = []
        self.stream_log: List[Tuple[str, int, float]] = []
        self.storage_url = ""
        self.on_webhook_created: Callable[[], None] = lambda: None
        self._lock = threading.RLock()
        self._stopping = False
        self._signing_key = secrets.token_bytes(32)
        # Timestamps are wall-clock: the emulated instant t is real time
        # `clock.real_elapsed(t)` after the clock's start.
        self._wall_base = datetime.now(timezone.utc) - timedelta(
            seconds=clock.real_elapsed(clock.now())
        )
        self._workflows: Dict[str, WorkflowSpec] = {s.id: s for s in builtin_workflows()}
        self._tasks: Dict[str, TaskRecord] = {}
        self._objects: Dict[str, StoredObject] = {}
        self._upload_targets: Dict[str, Tuple[str, int]] = {}  # bucket path -> (key, size)
        self._webhooks: Dict[str, Dict[str, Any]] = {}
        self._rng = random.Random(seed)
        self._owned_dir: Optional[tempfile.TemporaryDirectory[str]] = None
        self._upload_dir = upload_dir

    # -- time ---------------------------------------------------------------------------

    def now(self) -> float:
        """Emulated seconds since the clock started."""
        return self.clock.now()

    def wall_datetime(self, emulated: float) -> datetime:
        """The wall-clock moment of an emulated instant."""
        return self._wall_base + timedelta(seconds=self.clock.real_elapsed(emulated))

    def wall(self, emulated: float) -> str:
        """RFC 3339 (milliseconds, ``Z``) for an emulated instant."""
        moment = self.wall_datetime(emulated)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def stopping(self) -> bool:
        """True once the emulator is shutting down."""
        return self._stopping

    def stop(self) -> None:
        """Mark the world as stopping and wake every waiter."""
        self._stopping = True
        self.clock.notify()

    def remove_spool(self) -> None:
        """Remove the spool folder the world created for uploads (not one it was given)."""
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None
            self._upload_dir = None

    def sleep(self, seconds: float) -> bool:
        """Sleep in real time unless the emulator stops; True when it stopped."""
        with self.clock.condition:
            return bool(self.clock.condition.wait_for(self.stopping, timeout=seconds))

    # -- logs ---------------------------------------------------------------------------

    def record(self, record: RecordedRequest) -> None:
        """Log a request on its listener's list."""
        with self._lock:
            (self.requests if record.listener == "api" else self.storage_requests).append(record)

    def record_write(self, task_id: str, index: int, when: float) -> None:
        """Log that event ``index`` of a task was written to a stream."""
        with self._lock:
            self.stream_log.append((task_id, index, when))

    def record_delivery(self, record: DeliveryRecord) -> None:
        """Log a webhook delivery attempt."""
        with self._lock:
            self.webhook_deliveries.append(record)

    def clear_logs(self) -> None:
        """Forget every log."""
        with self._lock:
            self.requests.clear()
            self.storage_requests.clear()
            self.webhook_deliveries.clear()
            self.stream_log.clear()

    def fire(
        self, point: str, record: RecordedRequest, task_id: Optional[str], events: int = 0
    ) -> None:
        """Call the hooks registered for ``point`` (see ``CyberunEmulator.on``)."""
        self.hooks.fire(HookCall(point, record.route, task_id, record, events))

    def take_faults(
        self, kinds: Tuple[str, ...], route: str, task_id: Optional[str], **where: Any
    ) -> List[Fault]:
        """Consume the faults of ``kinds`` that target this request (see FaultBook.take)."""
        after_accept = where.get("after_accept")
        if after_accept is None:
            return self.faults.take(kinds, route, task_id)
        return self.faults.take(
            kinds, route, task_id, where=lambda f: bool(f.get("after_accept")) == after_accept
        )

    # -- credentials --------------------------------------------------------------------

    def credential_kind(self, token: str) -> Optional[str]:
        """``integration``, ``device``, ``jwt``, or None for an unknown token."""
        if hmac.compare_digest(token, self.api_key):
            return "integration"
        if hmac.compare_digest(token, self.device_key):
            return "device"
        if hmac.compare_digest(token, self.jwt):
            return "jwt"
        return None

    # -- workflows ----------------------------------------------------------------------

    def add_workflow(self, spec: WorkflowSpec) -> None:
        """Add (or replace) a workflow."""
        with self._lock:
            self._workflows[spec.id] = spec

    def workflow_by_id(self, workflow_id: str) -> Optional[WorkflowSpec]:
        """A workflow by id."""
        return self._workflows.get(workflow_id)

    def workflow_by_slug(self, slug: str) -> Optional[WorkflowSpec]:
        """A workflow by ``slug`` or ``slug@version`` (the newest version by default)."""
        name, _, version = slug.partition("@")
        candidates = [w for w in self._workflows.values() if w.slug == name]
        if version:
            if not version.isdigit():
                return None
            candidates = [w for w in candidates if w.version == int(version)]
        if not candidates:
            return None
        return max(candidates, key=lambda spec: spec.version)

    def latest_workflows(self) -> List[WorkflowSpec]:
        """The newest version of every workflow, by slug."""
        latest: Dict[str, WorkflowSpec] = {}
        for spec in self._workflows.values():
            if spec.slug not in latest or spec.version > latest[spec.slug].version:
                latest[spec.slug] = spec
        return sorted(latest.values(), key=lambda w: w.slug)

    def workflow_json(self, spec: WorkflowSpec, caller: str) -> Dict[str, Any]:
        """A workflow's wire JSON, as ``caller`` (a credential kind) sees it."""
        data: Dict[str, Any] = {
            "id": spec.id,
            "workflow_slug": spec.slug,
            "display_name": spec.display_name,
            "version": spec.version,
            "workflow_status": spec.workflow_status,
            "created_at": self.wall(spec.created_at),
            "updated_at": self.wall(spec.created_at),
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

    # -- tasks --------------------------------------------------------------------------

    def check_parameters(self, spec: WorkflowSpec, parameters: Dict[str, Any]) -> List[str]:
        """What the server refuses in a run's parameters (empty when none)."""
        problems = []
        now = self.now()
        for definition in spec.parameters:
            key = definition["key"]
            if definition.get("required") and key not in parameters:
                problems.append(f"parameter {key} is required")
            elif key in parameters and definition.get("type") == "file":
                value = parameters[key]
                stored = self._object(value, now) if isinstance(value, str) else None
                if stored is None:
                    problems.append(
                        f"parameter {key} must be the file_key of an uploaded file "
                        "(inputs are kept 1 day)"
                    )
        return problems

    def create_task(
        self, spec: WorkflowSpec, parameters: Dict[str, Any], source: str, options: Dict[str, Any]
    ) -> TaskRecord:
        """Create a task; its timeline starts now."""
        with self._lock:
            task_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            task = TaskRecord(
                id=task_id,
                workflow=spec,
                parameters=dict(parameters),
                created=self.now(),
                source=source,
                team_id=self.team_id,
                seed=seed_for(self.seed, task_id),
                options=options,
            )
            task.outputs = spec.outputs(task)
            entries = spec.script(task_id, dict(parameters))
            task.timeline = [
                Entry(task.created + e.time, e.event, e.data, e.status, e.retry_count, e.action)
                for e in entries
            ]
            terminal = task.terminal()
            if terminal is not None and terminal.event == "completed":
                terminal.data.setdefault("output", self._default_output(task))
                for output in task.outputs:
                    self._objects[output.storage_key] = StoredObject(
                        size=len(output.content),
                        content_type=output.content_type,
                        etag=hashlib.md5(output.content).hexdigest(),
                        content=output.content,
                        expires=terminal.time + OUTPUT_RETENTION,
                    )
            self._tasks[task_id] = task
        self.clock.notify()
        return task

    @staticmethod
    def _default_output(task: TaskRecord) -> Dict[str, Any]:
        if task.workflow.dispatch_target == "comfy_cloud":
            return {
                f.key: {"s3_key": f.storage_key, "content_type": f.content_type}
                for f in task.outputs
            }
        output: Dict[str, Any] = {
            "storage_key": task.outputs[0].storage_key if task.outputs else "",
            "image_count": len(task.outputs),
        }
        if task.workflow.tool_type == "nerfstudio":
            output = {"storage_key": output["storage_key"], "format": "ply"}
        return output

    def task(self, task_id: str) -> Optional[TaskRecord]:
        """A task by id."""
        return self._tasks.get(task_id)

    def tasks(self) -> List[TaskRecord]:
        """Every task, in the listing order (newest first, or unspecified)."""
        with self._lock:
            tasks = list(self._tasks.values())
        if self.list_order == "unspecified":
            return sorted(tasks, key=lambda t: t.id)  # stable, but not by time
        return sorted(tasks, key=lambda t: t.created, reverse=True)

    def cancel(self, task: TaskRecord) -> None:
        """Cancel a task (a no-op once it is terminal)."""
        with self._lock:
            changed = task.cancel(self.now())
        if changed:
            self.clock.notify()

    def task_json(self, task: TaskRecord) -> Dict[str, Any]:
        """``GET /tasks/{id}``'s answer now."""
        now = self.now()
        status, terminal, retries = task.current(now)
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
            "created_at": self.wall(task.created),
            "task_error": error,
            "retry_count": retries,
            "started_at": self.wall(started) if started is not None and started <= now else None,
            "completed_at": self.wall(terminal.time) if terminal is not None else None,
            "agent_id": "agent-gpu-01" if assigned else None,
            "agent_labels": ["gpu", "rtx4090"] if assigned else None,
            "gateway_id": "gw-emulator" if assigned else None,
            "gpu_type": "NVIDIA GeForce RTX 4090" if assigned else None,
            "dispatch_target": task.options.get("dispatch_target", task.workflow.dispatch_target),
            "target_pool": task.options.get("target_pool", "team"),
            "tool_type": task.workflow.tool_type,
        }

    def result_json(self, task: TaskRecord, ttl: Optional[float] = None) -> Dict[str, Any]:
        """``GET /tasks/{id}/result``'s answer now, with fresh presigned URLs.

        Seed 004: ``download_url`` is the primary output, present when the
        output has a ``storage_key``; cloud tasks (several outputs by key)
        carry ``download_urls`` instead, and no ``download_url``.
        """
        now = self.now()
        status, terminal, _ = task.current(now)
        result: Dict[str, Any] = {
            "id": task.id,
            "task_status": status,
            "task_output": None,
            "download_url": None,
            "download_urls": None,
            "expires_at": None,
            "task_error": "",
            "completed_at": self.wall(terminal.time) if terminal is not None else None,
        }
        if terminal is None or terminal.event == "cancelled":
            return result
        if terminal.event == "failed":
            result["task_error"] = terminal.data.get("error", "")
            return result
        lifetime = self.url_ttl if ttl is None else ttl
        urls = [(f.key, self.sign_url("GET", f.storage_key, lifetime)) for f in task.outputs]
        result["task_output"] = terminal.data.get("output")
        if urls:
            result["expires_at"] = self.wall(now + lifetime)
            if task.workflow.dispatch_target == "comfy_cloud":
                result["download_urls"] = dict(urls)
            else:
                result["download_url"] = urls[0][1]
        return result

    def task_answer(self, task: TaskRecord) -> bytes:
        """``GET /tasks/{id}``'s body: the recorded one for a replayed task."""
        if task.workflow.replay is not None:
            body: bytes = task.workflow.replay.task_body(task.id, self.now() - task.created)
            if body:
                return body
        return json.dumps(self.task_json(task)).encode()

    def result_answer(self, task: TaskRecord, ttl: Optional[float] = None) -> bytes:
        """``GET /tasks/{id}/result``'s body: the recorded one, signed afresh, when replayed."""
        replay = task.workflow.replay
        if replay is not None:
            lifetime = self.url_ttl if ttl is None else ttl
            files = {f.key: f for f in task.outputs}

            def sign(key: str) -> Tuple[str, str]:
                storage_key = files[key].storage_key if key in files else f"missing/{key}"
                url = self.sign_url("GET", storage_key, lifetime)
                return url, self.wall(self.now() + lifetime)

            body: bytes = replay.result_body(task.id, self.now() - task.created, sign)
            if body:
                return body
        return json.dumps(self.result_json(task, ttl=ttl)).encode()

    def delivery_payload(self, task: TaskRecord, event_type: str) -> Dict[str, Any]:
        """The body of a webhook delivery for a finished task."""
        result = self.result_json(task)
        return {
            "event_type": event_type,
            "task_id": task.id,
            "task_status": result["task_status"],
            "task_output": result["task_output"],
            "task_error": result["task_error"],
            "timestamp": result["completed_at"],
        }

    # -- storage ------------------------------------------------------------------------

    def sign_url(
        self,
        method: str,
        object_key: str,
        ttl: float,
        signed_headers: Tuple[str, ...] = ("host",),
    ) -> str:
        """A presigned URL for ``object_key``, valid for ``ttl`` emulated seconds.

        ``X-Amz-Date`` is the wall-clock issue time and ``X-Amz-Expires`` the
        lifetime in real seconds (rounded up), as S3 writes them; the signed
        ``x-emulator-expiry`` (the exact emulated expiry) is what decides, so
        that links issued within one second still die at their own time.
        """
        now = self.now()
        path = f"/{BUCKET}/{quote(object_key)}"
        amz_date = self.wall_datetime(now).strftime("%Y%m%dT%H%M%SZ")
        expires = str(max(math.ceil(self.clock.real_elapsed(max(ttl, 0.0))), 0))
        expiry = repr(now + max(ttl, 0.0))
        signed = ";".join(signed_headers)
        signature = self._signature(method, path, amz_date, expires, signed, expiry)
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": "EMULATOR/auto/s3/aws4_request",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": expires,
                "X-Amz-SignedHeaders": signed,
                "x-emulator-expiry": expiry,
                "X-Amz-Signature": signature,
            }
        )
        return f"{self.storage_url}{path}?{query}"

    def _signature(self, *parts: str) -> str:
        message = "\n".join(parts).encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def check_signature(
        self, method: str, path: str, query: Dict[str, str], headers: Any
    ) -> Optional[Tuple[str, str]]:
        """None when a storage request is properly signed, else (S3 code, message)."""
        try:
            amz_date = query["X-Amz-Date"]
            expires = query["X-Amz-Expires"]
            signed = query["X-Amz-SignedHeaders"]
            expiry = query["x-emulator-expiry"]
            given = query["X-Amz-Signature"]
        except KeyError:
            return (
                "AccessDenied",
                "Query-string authentication requires the signature parameters",
            )
        expected = self._signature(method, path, amz_date, expires, signed, expiry)
        if not hmac.compare_digest(expected, given):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        if self.now() > float(expiry):
            return ("AccessDenied", "Request has expired")
        names = signed.split(";")
        if "content-length" in names and method == "PUT":
            target = self._upload_targets.get(path)
            if target is None or headers.get("Content-Length") != str(target[1]):
                return ("SignatureDoesNotMatch", "Content-Length is signed and does not match")
        if "if-none-match" in names and headers.get("If-None-Match") != "*":
            return ("SignatureDoesNotMatch", "If-None-Match is signed and is missing")
        return None

    def presign_upload(self, name: str, size: int, content_type: str) -> Dict[str, Any]:
        """``POST /files/presign``'s answer: a key and a signed PUT for exactly ``size`` bytes."""
        safe = (
            "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[-100:] or "upload"
        )
        key = f"inputs/{uuid.uuid4().hex}/{safe}"
        url = self.sign_url("PUT", key, 3600.0, ("content-length", "host", "if-none-match"))
        with self._lock:
            self._upload_targets[f"/{BUCKET}/{quote(key)}"] = (key, size)
        return {
            "file_key": key,
            "upload_url": url,
            "upload_headers": {"Content-Length": str(size), "If-None-Match": "*"},
        }

    def _object(self, key: str, now: float) -> Optional[StoredObject]:
        with self._lock:
            stored = self._objects.get(key)
            if stored is not None and stored.expires is not None and now > stored.expires:
                del self._objects[key]  # past its retention: deleted, as the API documents
                if stored.path is not None:
                    stored.path.unlink(missing_ok=True)
                return None
            return stored

    def delete_object(self, key: str) -> bool:
        """Delete an object (and its spooled file); False when there was none."""
        with self._lock:
            stored = self._objects.pop(key, None)
        if stored is not None and stored.path is not None:
            stored.path.unlink(missing_ok=True)
        return stored is not None

    def stored(self, key: str) -> Optional[StoredObject]:
        """An object in storage, unless absent or past its retention."""
        return self._object(key, self.now())

    def store_upload(
        self, key: str, body: Readable, length: int, content_type: str
    ) -> Optional[StoredObject]:
        """Read ``length`` bytes of an upload and keep them as ``uploads`` says.

        Returns None (and keeps nothing) when the key exists already (the
        ``If-None-Match: *`` precondition).
        """
        if self.stored(key) is not None:
            return None
        digest = hashlib.md5()
        pieces: List[bytes] = []
        spool: Optional[Path] = None
        file: Optional[BinaryIO] = None
        if self.uploads == "disk":
            spool = self._spool_dir() / uuid.uuid4().hex
            file = spool.open("wb")
        try:
            left = length
            while left > 0:
                piece = body.read(min(65536, left))
                if not piece:
                    raise ConnectionResetError("the upload ended early")
                left -= len(piece)
                digest.update(piece)
                if file is not None:
                    file.write(piece)
                elif self.uploads == "memory":
                    pieces.append(piece)
        except BaseException:
            if file is not None:
                file.close()
                assert spool is not None
                spool.unlink()
            raise
        if file is not None:
            file.close()
        stored = StoredObject(
            size=length,
            content_type=content_type,
            etag=digest.hexdigest(),
            content=b"".join(pieces) if self.uploads == "memory" else None,
            path=spool,
            expires=self.now() + self.input_retention,
        )
        with self._lock:
            if key in self._objects:
                if spool is not None:
                    spool.unlink()
                return None
            self._objects[key] = stored
        return stored

    def upload_target(self, path: str) -> Optional[str]:
        """The object key a presigned PUT path was issued for."""
        target = self._upload_targets.get(path)
        return None if target is None else target[0]

    def _spool_dir(self) -> Path:
        with self._lock:
            if self._upload_dir is None:
                self._owned_dir = tempfile.TemporaryDirectory(prefix="cyberun-emulator-")
                self._upload_dir = Path(self._owned_dir.name)
            self._upload_dir.mkdir(parents=True, exist_ok=True)
            return self._upload_dir

    # -- webhooks -----------------------------------------------------------------------

    def validate_webhook(self, body: Any, *, creating: bool) -> Optional[str]:
        """What is wrong with a webhook's settings, or None."""
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

    def create_webhook(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """Create a webhook; returns its JSON with the secret."""
        hook_id = str(uuid.uuid4())
        now = self.now()
        hook = {
            "id": hook_id,
            "display_name": body["display_name"],
            "webhook_url": body["webhook_url"],
            "webhook_events": list(body["webhook_events"]),
            "webhook_secret": _new_secret(),
            "is_active": True,
            "created_at": self.wall(now),
            "updated_at": self.wall(now),
            "_created": now,
        }
        with self._lock:
            self._webhooks[hook_id] = hook
        self.on_webhook_created()
        return _webhook_json(hook, secret=True)

    def webhooks_json(self) -> List[Dict[str, Any]]:
        """Every webhook's JSON, without secrets."""
        with self._lock:
            return [_webhook_json(h, secret=False) for h in self._webhooks.values()]

    def webhook_json(self, hook_id: str) -> Optional[Dict[str, Any]]:
        """One webhook's JSON without its secret, or None."""
        hook = self._webhooks.get(hook_id)
        return None if hook is None else _webhook_json(hook, secret=False)

    def update_webhook(self, hook_id: str, body: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Change a webhook's settings; None when there is no such webhook."""
        with self._lock:
            hook = self._webhooks.get(hook_id)
            if hook is None:
                return None
            for key in ("display_name", "webhook_url", "webhook_events", "is_active"):
                if key in body:
                    hook[key] = body[key]
            hook["updated_at"] = self.wall(self.now())
            return _webhook_json(hook, secret=False)

    def delete_webhook(self, hook_id: str) -> bool:
        """Delete a webhook; False when there was none."""
        with self._lock:
            return self._webhooks.pop(hook_id, None) is not None

    def rotate_secret(self, hook_id: str) -> Optional[str]:
        """A new secret for a webhook (the old one stops working at once)."""
        with self._lock:
            hook = self._webhooks.get(hook_id)
            if hook is None:
                return None
            hook["webhook_secret"] = _new_secret()
            return str(hook["webhook_secret"])

    def due_deliveries(self) -> List[Tuple[Dict[str, Any], TaskRecord, str, float]]:
        """(webhook, task, event type, time it became due) for every finished task and hook."""
        found = []
        with self._lock:
            tasks = list(self._tasks.values())
            hooks = [dict(h) for h in self._webhooks.values()]
        now = self.now()
        for task in tasks:
            terminal = task.terminal()
            if terminal is None or terminal.event == "cancelled" or terminal.time > now:
                continue
            event_type = f"task.{terminal.event}"
            for hook in hooks:
                if event_type not in hook.get("webhook_events", []) or not hook.get(
                    "is_active", True
                ):
                    continue
                if hook["_created"] > terminal.time:
                    continue  # subscribed after the task finished
                found.append((hook, task, event_type, terminal.time))
        return found

    def next_terminal_time(self) -> Optional[float]:
        """The earliest future terminal event of any task (to sleep until)."""
        now = self.now()
        times = [
            t.time
            for task in list(self._tasks.values())
            for t in [task.terminal()]
            if t is not None and t.time > now
        ]
        return min(times) if times else None


def _new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def _webhook_json(hook: Dict[str, Any], *, secret: bool) -> Dict[str, Any]:
    data = {k: v for k, v in hook.items() if not k.startswith("_")}
    if not secret:
        data.pop("webhook_secret", None)
    return data
