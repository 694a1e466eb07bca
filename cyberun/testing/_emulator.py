"""CyberunEmulator: a real local Cyberun server for tests, demos and development."""

from __future__ import annotations

import base64
import errno
import json
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from ._api import ApiHandler
from ._builtins import TimelineSource, failing_timeline, png_bytes, script_for
from ._clock import Clock, ManualClock, ScaledClock
from ._faults import Fault, FaultBook
from ._hooks import Hook, HookCall
from ._http import Server
from ._recording import Recording
from ._records import DeliveryRecord, OutputFile, RecordedRequest, TaskRecord, WorkflowSpec
from ._replay import Replay
from ._storage import StorageHandler
from ._timeline import Timeline
from ._webhooks import WebhookDispatcher
from ._world import INPUT_RETENTION, StreamOptions, World

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
        uploads: str = "memory",
        upload_dir: Optional[Union[str, Path]] = None,
        list_order: str = "newest",
        input_retention: float = INPUT_RETENTION,
    ) -> None:
        _check_choice("sse_framing", sse_framing, ("chunked", "close"))
        _check_choice("sse_history", sse_history, ("status", "full"))
        _check_choice("uploads", uploads, ("memory", "disk", "discard"))
        _check_choice("list_order", list_order, ("newest", "unspecified"))
        for name, value in (("url_ttl", url_ttl), ("input_retention", input_retention)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"{name} must be a number of emulated seconds >= 0, not {value!r}"
                )
        if keepalive_interval is not None and not keepalive_interval > 0:
            raise ValueError(
                f"keepalive_interval must be a positive number of seconds (or None), "
                f"not {keepalive_interval!r}"
            )
        if sse_retry is not None and (
            isinstance(sse_retry, bool) or not isinstance(sse_retry, int)
        ):
            raise ValueError(
                f"sse_retry must be an int of milliseconds (or None), not {sse_retry!r}"
            )
        if upload_dir is not None and uploads != "disk":
            raise ValueError('upload_dir needs uploads="disk"')
        if clock is None:
            if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)):
                raise ValueError(f"time_scale must be a number, not {time_scale!r}")
            if time_scale <= 0:
                raise ValueError(
                    f"time_scale must be positive (real seconds per emulated second), "
                    f"not {time_scale!r}"
                )
        self.clock: Clock = clock or ScaledClock(time_scale)
        self.host = host
        self.port = port
        self.storage_host = storage_host
        self.storage_port = storage_port
        team_id = str(uuid.uuid4())
        self.team_id: str = team_id
        self.api_key: str = api_key or f"sk-emu-{secrets.token_hex(16)}"
        self.device_key: str = f"dk-emu-{secrets.token_hex(16)}"
        self.jwt: str = _fake_jwt(team_id)
        self.world: World = World(
            clock=self.clock,
            seed=seed,
            url_ttl=url_ttl,
            stream=StreamOptions(
                ids=sse_ids,
                retry=sse_retry,
                framing=sse_framing,
                history=sse_history,
                keepalive_interval=keepalive_interval,
            ),
            max_upload_size=max_upload_size,
            uploads=uploads,
            upload_dir=None if upload_dir is None else Path(upload_dir),
            list_order=list_order,
            input_retention=input_retention,
            api_key=self.api_key,
            device_key=self.device_key,
            jwt=self.jwt,
            team_id=team_id,
        )
        self._dispatcher = WebhookDispatcher(self.world)
        self.world.on_webhook_created = self._dispatcher.ensure_started
        self._servers: List[Tuple[Server, threading.Thread]] = []
        self.base_url: str = ""
        self.storage_url: str = ""

    # -- what the world records ---------------------------------------------------------

    @property
    def faults(self) -> FaultBook:
        """The active faults."""
        return self.world.faults

    @property
    def requests(self) -> List[RecordedRequest]:
        """Every API request received, credentials redacted."""
        return self.world.requests

    @property
    def storage_requests(self) -> List[RecordedRequest]:
        """Every storage request received."""
        return self.world.storage_requests

    @property
    def webhook_deliveries(self) -> List[DeliveryRecord]:
        """Every webhook delivery attempt."""
        return self.world.webhook_deliveries

    @property
    def stream_log(self) -> List[Tuple[str, int, float]]:
        """``(task_id, event_index, monotonic_time)`` for every event written to a stream."""
        return self.world.stream_log

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CyberunEmulator:
        """Bind both listeners and start serving; returns self.

        Raises:
            OSError: an address cannot be bound (the message says which and what to do).
        """
        if self._servers:
            return self
        api = _bind((self.host, self.port), ApiHandler, self.world, "api")
        try:
            storage = Server(
                (self.storage_host, self.storage_port), StorageHandler, self.world, "storage"
            )
            storage_name = self.storage_host
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EINVAL):
                api.server_close()
                raise _bind_error(
                    exc, self.storage_host, self.storage_port, "storage_port"
                ) from None
            try:
                storage = _bind(
                    (self.host, self.storage_port), StorageHandler, self.world, "storage"
                )
            except OSError:
                api.server_close()
                raise
            storage_name = "localhost"
        self.base_url = f"http://{_url_host(self.host)}:{api.server_address[1]}"
        self.storage_url = f"http://{_url_host(storage_name)}:{storage.server_address[1]}"
        self.world.storage_url = self.storage_url
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
        self.world.stop()
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
        self.world.remove_spool()

    def __enter__(self) -> CyberunEmulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<CyberunEmulator {self.base_url or '(not started)'}>"

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
                ``"download"``, ... see ``cyberun.testing.ROUTES``); it must
                be one the fault applies to (``cyberun.testing.FAULT_ROUTES``).
            task_id: limit it to one task.
            times: how many requests (or streams) it affects; None for all
                until [`clear_faults`][cyberun.testing.CyberunEmulator.clear_faults].
            params: the fault's parameters, e.g. ``status=503, retry_after=1``.

        Raises:
            ValueError: an unknown fault, route or parameter, or a route the
                fault does not apply to (a fault is never accepted and then
                silently ignored).
        """
        return self.world.faults.add(
            Fault(fault, route=route, task_id=task_id, times=times, params=params)
        )

    def on(
        self,
        point: str,
        callback: Callable[[HookCall], None],
        *,
        route: Optional[str] = None,
        task_id: Optional[str] = None,
        times: Optional[int] = 1,
        after_events: Optional[int] = None,
    ) -> Hook:
        """Call ``callback`` when the emulator reaches ``point``.

        Points: ``"created"`` (a run created its task; the answer is not
        written yet), ``"answered"`` (a request's answer was written, or its
        connection cut), ``"event"`` (an event was written to a stream). The
        callback runs in the serving thread and gets a
        [`HookCall`][cyberun.testing.HookCall]; what it raises is kept in the
        hook's ``errors``, and the emulator carries on:

        ```python
        from cyberun.testing import CyberunEmulator

        with CyberunEmulator(time_scale=0.01) as server:
            # Cancel each task the moment it is created: before its run is answered.
            server.on("created", lambda call: server.cancel(call.task_id), times=None)
        ```

        Args:
            point: ``created``, ``answered`` or ``event``.
            callback: called with a ``HookCall``.
            route: only for requests to this route.
            task_id: only for this task.
            times: how many calls; None until the emulator stops.
            after_events: at ``event``, only once a stream has written this
                many events.
        """
        return self.world.hooks.add(
            Hook(point, callback, route=route, task_id=task_id, times=times,
                 after_events=after_events)
        )  # fmt: skip

    def cancel(self, task_id: str) -> None:
        """Cancel a task (no HTTP); a no-op once it has ended."""
        self.world.cancel(self._task(task_id))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.world.faults.clear()

    def clear_logs(self) -> None:
        """Forget the request and delivery logs."""
        self.world.clear_logs()

    def reset(self) -> None:
        """Between tests: remove every fault and hook, forget every log (tasks stay)."""
        self.clear_faults()
        self.world.hooks.clear()
        self.clear_logs()

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
        timeline: Optional[TimelineSource] = None,
    ) -> Dict[str, Any]:
        """Add a workflow; returns its wire JSON (with its ``id``).

        Args:
            slug: the slug (``slug@version`` selects ``version`` when running).
            display_name: the name shown in lists (default: the slug).
            tool_type: ``"comfyui"`` or ``"nerfstudio"``.
            parameters: ParameterDef dictionaries, as the API documents them.
            steps: progress ticks before completion (without ``timeline``).
            step_seconds: emulated seconds per tick (without ``timeline``).
            outputs: result files (more than one puts them in ``download_urls``).
            fail_with: make every task fail with this error message (without
                ``timeline``).
            version: the workflow version.
            dispatch_target: ``"agent"`` or ``"comfy_cloud"``.
            status: ``"active"`` or ``"disabled"``.
            output_keys: the keys of the outputs in ``download_urls`` (any
                strings, hostile ones included); implies several outputs.
            timeline: what each task does: a
                [`Timeline`][cyberun.testing.Timeline], or a function of the
                run parameters returning one. By default a ComfyUI render of
                ``steps`` ticks (Nerfstudio workflows: the five stages with
                messages), or a failure with ``fail_with``.
        """
        _check_choice("tool_type", tool_type, ("comfyui", "nerfstudio"))
        _check_choice("dispatch_target", dispatch_target, ("agent", "comfy_cloud"))
        _check_choice("status", status, ("active", "disabled"))
        if timeline is not None and not (isinstance(timeline, Timeline) or callable(timeline)):
            raise TypeError(
                f"timeline must be a Timeline or a function returning one, "
                f"not {type(timeline).__name__}"
            )
        keys = list(output_keys) if output_keys is not None else None
        if keys is not None:
            outputs = len(keys)
        cloud = outputs > 1 or dispatch_target == "comfy_cloud" or keys is not None
        nerf = tool_type == "nerfstudio"

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

        if timeline is None:
            if fail_with:
                timeline = failing_timeline(fail_with)
            elif nerf:
                timeline = Timeline.nerfstudio(max(steps, 1), tick_seconds=step_seconds * 2)
            else:
                timeline = Timeline.comfyui(steps, step_seconds=step_seconds)
        spec = WorkflowSpec(
            slug=slug,
            version=version,
            display_name=display_name or slug,
            description=f"Added by the test: {slug}",
            tool_type=tool_type,
            parameters=list(parameters),
            script=script_for(timeline),
            outputs=make_outputs,
            dispatch_target="comfy_cloud" if cloud else dispatch_target,
            workflow_status=status,
            created_at=self.clock.now(),
        )
        self.world.add_workflow(spec)
        return self.world.workflow_json(spec, "jwt")

    def add_recording(
        self, path: Union[str, Path], *, slug: Optional[str] = None
    ) -> Dict[str, Any]:
        """Add a workflow whose tasks replay a recording; returns its wire JSON.

        The recording (made by
        [`RecordingTransport`][cyberun.testing.RecordingTransport] or
        ``cyberun watch TASK_ID --record-stream FILE``) is replayed byte for
        byte, except that the recorded task id becomes each new task's id:
        the n-th event stream of a task gets the n-th recorded stream, each
        read at its recorded pace (recorded seconds x ``time_scale``), cut
        where the recorded connection broke; the task and result routes
        answer the JSON recorded last before the task's age, the result's
        links signed afresh by this emulator (its files are generated
        images). Status changes, cancelling and webhooks follow the recorded
        events.

        Args:
            path: the recording (JSON Lines, ``cyberun-recording`` version 1).
            slug: the workflow's slug (default: the file name without suffix).

        Raises:
            ValueError: the file is not a recording this emulator can replay.
        """
        replay = Replay(Recording(path))
        keys = replay.output_keys
        cloud = any(keys)
        defined = replay.workflow if isinstance(replay.workflow, dict) else {}

        def make_outputs(task: TaskRecord) -> List[OutputFile]:
            prefix = "outputs" if cloud else "tasks"
            return [
                OutputFile(
                    key=key,
                    storage_key=f"{prefix}/{task.id}/output_{i + 1:05d}_.png",
                    content=png_bytes(task.seed * 31 + i),
                    content_type="image/png",
                )
                for i, key in enumerate(keys)
            ]

        name = slug or Path(path).stem
        spec = WorkflowSpec(
            slug=name,
            display_name=f"Replay of {Path(path).name}",
            description=f"Replays the recording {Path(path).name}.",
            tool_type=str(defined.get("tool_type", "comfyui")),
            parameters=list(defined.get("parameters", [])),
            script=lambda task_id, parameters: replay.entries(task_id),
            outputs=make_outputs,
            dispatch_target="comfy_cloud" if cloud else "agent",
            created_at=self.clock.now(),
            replay=replay,
        )
        self.world.add_workflow(spec)
        return self.world.workflow_json(spec, "jwt")

    def create_task(self, workflow: str, parameters: Optional[Dict[str, Any]] = None) -> str:
        """Start a task directly (no HTTP); returns its id."""
        spec = self.world.workflow_by_slug(workflow) or self.world.workflow_by_id(workflow)
        if spec is None:
            raise KeyError(f"no workflow {workflow!r}")
        return self.world.create_task(spec, parameters or {}, "api_key", {}).id

    def _task(self, task_id: str) -> TaskRecord:
        task = self.world.task(task_id)
        if task is None:
            raise KeyError(f"no task {task_id!r}")
        return task

    def task_status(self, task_id: str) -> str:
        """A task's current status (no HTTP)."""
        return self._task(task_id).current(self.clock.now())[0]

    def stored_bytes(self, key: str) -> Optional[bytes]:
        """An object's bytes in emulated storage (an upload, an output), or None (no HTTP)."""
        stored = self.world.stored(key)
        if stored is None or not stored.readable:
            return None
        return b"".join(stored.chunks())

    def delete_object(self, key: str) -> bool:
        """Delete an object from emulated storage, as retention would; False if absent."""
        return self.world.delete_object(key)

    def task_parameters(self, task_id: str) -> Dict[str, Any]:
        """The parameters a task was started with (no HTTP)."""
        return dict(self._task(task_id).parameters)

    def finish_time(self, task_id: str) -> float:
        """The emulated time of the task's last step (its end, given no cancel)."""
        return self._task(task_id).timeline[-1].time


def _check_choice(name: str, value: Any, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def _bind(address: Tuple[str, int], handler: type, world: World, listener: str) -> Server:
    try:
        return Server(address, handler, world, listener)
    except OSError as exc:
        option = "port" if listener == "api" else "storage_port"
        raise _bind_error(exc, address[0], address[1], option) from None


def _bind_error(exc: OSError, host: str, port: int, option: str) -> OSError:
    if exc.errno == errno.EADDRINUSE:
        message = (
            f"cannot listen on {host}:{port}: the port is in use (another emulator or server?); "
            f"stop it, or pass {option}=0 to pick a free port"
        )
    else:
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return OSError(exc.errno, message)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _fake_jwt(team_id: str) -> str:
    def b64(data: Union[bytes, str]) -> str:
        raw = data.encode() if isinstance(data, str) else data
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = b64(json.dumps({"sub": "emulator-user", "teams": [team_id]}))
    return f"{header}.{payload}.{b64(secrets.token_bytes(32))}"
