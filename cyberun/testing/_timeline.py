"""Timeline: what an emulated task does over time, as a small immutable value.

A timeline is a sequence of steps, each ``after`` emulated seconds past the
one before (the emulator's ``time_scale`` turns emulated seconds into real
ones). Every builder method returns a new timeline, so a base timeline can
be shared and extended::

    queue = Timeline().status("waiting", after=0.3).status("queued", after=0.3)
    render = queue.status("running", after=0.4).ticks(20, every=0.1).complete(after=0.3)

Steps write the wire format of the API documentation directly (``status``,
``progress``, ``error`` and terminal events; keep-alive comments), never the
SDK's models.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._records import TERMINAL, Entry

__all__ = ["Step", "Timeline"]

_STATUSES = ("pending", "waiting", "provisioning", "queued", "running")
_KINDS = (
    "status",
    "progress",
    "error",
    "keepalive",
    "quiet",
    "retry",
    "drop",
    "other_task",
    "completed",
    "failed",
    "cancelled",
)


@dataclass(frozen=True)
class Step:
    """One step of a [`Timeline`][cyberun.testing.Timeline].

    Attributes:
        kind: one of ``status``, ``progress``, ``error``, ``keepalive``,
            ``quiet``, ``retry``, ``drop``, ``other_task``, ``completed``,
            ``failed``, ``cancelled``.
        after: emulated seconds after the previous step.
        data: the event's fields beyond ``task_id`` (for ``status``: the
            status; ``progress``: the tick's fields; ``error``: the message;
            ``failed``: the error; ``completed``: the output, when given;
            ``other_task``: the event name and its fields).
    """

    kind: str
    after: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)


def _check_step(step: Step) -> None:
    if step.kind not in _KINDS:
        raise ValueError(f"unknown timeline step {step.kind!r}; known: {', '.join(_KINDS)}")
    _check_after(step.after)


def _check_after(after: float) -> float:
    if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
        raise ValueError(f"after must be a number of emulated seconds >= 0, not {after!r}")
    return float(after)


@dataclass(frozen=True)
class Timeline:
    """What a task does over time: status changes, progress, errors, faults, the end.

    Build one with the methods below (each returns a new timeline) and give
    it to [`add_workflow`][cyberun.testing.CyberunEmulator.add_workflow]:

    ```python
    import cyberun
    from cyberun.testing import CyberunEmulator, Timeline

    two_samplers = (
        Timeline()
        .status("waiting", after=0.3)
        .status("queued", after=0.3)
        .status("running", after=0.4)
        .ticks(4, every=0.1, current_node="3")
        .ticks(4, every=0.1, current_node="7")  # progress restarts on the second node
        .complete(after=0.2)
    )
    with CyberunEmulator(time_scale=0.01) as server:
        server.add_workflow("two-samplers", timeline=two_samplers)
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            seen = []
            client.run("two-samplers").wait(on_event=seen.append)
    nodes = [e.current_node for e in seen if e.type == "progress"]
    print(nodes)  # ['3', '3', '3', '3', '7', '7', '7', '7']
    ```

    A task starts ``pending`` at its creation (the emulator writes that
    first ``status`` event itself). A timeline without a terminal step
    describes a task that never ends (until cancelled); nothing may follow
    a terminal step.

    Attributes:
        steps: the steps, in order.
    """

    steps: Tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        for position, step in enumerate(self.steps):
            _check_step(step)
            if step.kind in TERMINAL and position != len(self.steps) - 1:
                raise ValueError(f"nothing may follow the terminal step {step.kind!r}")

    def then(self, step: Step) -> Timeline:
        """This timeline followed by one more step."""
        if self.steps and self.steps[-1].kind in TERMINAL:
            raise ValueError(
                f"this timeline already ends with {self.steps[-1].kind!r}; "
                "add steps before the terminal one"
            )
        _check_step(step)
        # The steps before it were checked when this timeline was made: only
        # the new one is (re-checking all of them made long timelines quadratic).
        extended = object.__new__(Timeline)
        object.__setattr__(extended, "steps", (*self.steps, step))
        return extended

    # -- what the task does ------------------------------------------------------------

    def status(self, status: str, *, after: float = 0.0) -> Timeline:
        """A status change and its ``status`` event.

        Args:
            status: ``pending``, ``waiting``, ``provisioning``, ``queued`` or
                ``running`` (terminal states have their own steps).
            after: emulated seconds after the previous step.
        """
        if status not in _STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(_STATUSES)} (use complete/fail/cancel to end)"
            )
        return self.then(Step("status", _check_after(after), {"status": status}))

    def progress(
        self,
        progress: float,
        *,
        after: float = 0.0,
        step_current: Optional[int] = None,
        step_total: Optional[int] = None,
        current_node: Optional[str] = None,
        stage: Optional[str] = None,
        message: Optional[str] = None,
    ) -> Timeline:
        """One ``progress`` tick; fields left as None are not sent.

        Args:
            progress: 0.0-1.0 (sent as given: it may go back).
            after: emulated seconds after the previous step.
            step_current: steps done so far.
            step_total: steps in all.
            current_node: the runtime's active node.
            stage: the Nerfstudio stage (``download``, ``process_data``,
                ``train``, ``export``, ``upload``).
            message: the Nerfstudio status text.
        """
        fields: Dict[str, Any] = {"progress": progress}
        for name, value in (
            ("step_current", step_current),
            ("step_total", step_total),
            ("current_node", current_node),
            ("stage", stage),
            ("message", message),
        ):
            if value is not None:
                fields[name] = value
        return self.then(Step("progress", _check_after(after), fields))

    def ticks(
        self,
        count: int,
        *,
        every: float = 0.1,
        current_node: Optional[str] = "3",
        stage: Optional[str] = None,
        message: Optional[str] = None,
        start: float = 0.0,
        stop: float = 1.0,
        step_total: Optional[int] = None,
    ) -> Timeline:
        """``count`` progress ticks ``every`` emulated seconds apart.

        Tick ``i`` (from 1) reports ``step_current = i * step_total / count``
        of ``step_total`` (default ``count``) and a progress going from
        ``start`` to ``stop``. ``message`` may hold ``{step}`` and ``{total}``.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        total = count if step_total is None else step_total
        timeline = self
        for i in range(1, count + 1):
            step = total * i // count
            timeline = timeline.progress(
                round(start + (stop - start) * i / count, 4),
                after=every,
                step_current=step if stage is None or step_total is not None else None,
                step_total=total if stage is None or step_total is not None else None,
                current_node=current_node,
                stage=stage,
                message=None if message is None else message.format(step=step, total=total),
            )
        return timeline

    def error(
        self, message: str = "failed to fetch task status", *, after: float = 0.0
    ) -> Timeline:
        """A server-side ``error`` event (recoverable: the stream goes on)."""
        return self.then(Step("error", _check_after(after), {"message": message}))

    def keepalive(self, *, after: float = 0.0) -> Timeline:
        """A ``: keep-alive`` comment on every open stream."""
        return self.then(Step("keepalive", _check_after(after)))

    def quiet(self, seconds: float) -> Timeline:
        """Nothing at all for ``seconds`` emulated seconds (no event, no keep-alive)."""
        return self.then(Step("quiet", _check_after(seconds)))

    def retry(self, *, after: float = 0.0) -> Timeline:
        """A server-side automatic retry: ``retry_count`` grows, the status is ``queued`` again.

        Follow it with ``status("running")`` and new ticks: progress restarts.
        """
        return self.then(Step("retry", _check_after(after), {"status": "queued"}))

    def drop(self, *, after: float = 0.0) -> Timeline:
        """Cut every stream that reaches this point, once (a reconnect carries on)."""
        return self.then(Step("drop", _check_after(after)))

    def other_task(
        self,
        event: str = "progress",
        *,
        after: float = 0.0,
        data: Optional[Mapping[str, Any]] = None,
    ) -> Timeline:
        """An event about another task on this task's stream (a server mix-up).

        Args:
            event: the event name.
            after: emulated seconds after the previous step.
            data: its fields; ``task_id`` is another task's id.
        """
        fields = dict(data) if data is not None else {"progress": 0.5}
        return self.then(
            Step("other_task", _check_after(after), {"event": event, "fields": fields})
        )

    # -- how it ends --------------------------------------------------------------------

    def complete(
        self, *, after: float = 0.0, output: Optional[Mapping[str, Any]] = None
    ) -> Timeline:
        """The ``completed`` event; the result carries the workflow's files.

        Args:
            after: emulated seconds after the previous step.
            output: the ``output`` object of the event and the result's
                ``task_output``; by default it describes the task's files.
        """
        data = {} if output is None else {"output": dict(output)}
        return self.then(Step("completed", _check_after(after), data))

    def fail(self, error: str, *, after: float = 0.0) -> Timeline:
        """The ``failed`` event with ``error``; the result has no files."""
        return self.then(Step("failed", _check_after(after), {"error": error}))

    def cancel(self, *, after: float = 0.0) -> Timeline:
        """The ``cancelled`` event, as if someone cancelled the task."""
        return self.then(Step("cancelled", _check_after(after)))

    # -- ready-made ---------------------------------------------------------------------

    @classmethod
    def queue(cls, *, provisioning: float = 0.0) -> Timeline:
        """Pending -> waiting -> queued -> running, as the built-in workflows do.

        Args:
            provisioning: emulated seconds in ``provisioning`` between
                ``waiting`` and ``queued`` (0 skips that status).
        """
        timeline = cls().status("waiting", after=0.3)
        if provisioning:
            timeline = timeline.status("provisioning", after=0.3)
            return timeline.status("queued", after=provisioning).status("running", after=0.4)
        return timeline.status("queued", after=0.3).status("running", after=0.4)

    @classmethod
    def comfyui(cls, steps: int = 20, *, step_seconds: float = 0.1) -> Timeline:
        """A ComfyUI render: the queue, ``steps`` ticks on sampler node ``3``, completion."""
        return cls.queue().ticks(steps, every=step_seconds).complete(after=0.3)

    @classmethod
    def nerfstudio(cls, iterations: int = 30_000, *, tick_seconds: float = 0.2) -> Timeline:
        """A Nerfstudio run: provisioning, then the five stages with messages, completion."""
        timeline = cls.queue(provisioning=1.0)
        for stage, start, stop, count, message in _NERF_STAGES:
            timeline = timeline.ticks(
                count,
                every=tick_seconds,
                current_node=None,
                stage=stage,
                message=message,
                start=start,
                stop=stop,
                step_total=iterations if stage == "train" else None,
            )
        return timeline.complete(after=0.3)

    # -- for the emulator ---------------------------------------------------------------

    def entries(self, task_id: str) -> List[Entry]:
        """The timeline as entries for one task, times relative to its creation."""
        entries = [Entry(0.0, "status", {"task_id": task_id, "status": "pending"}, "pending")]
        at, status, retries = 0.0, "pending", 0
        other = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cyberun-emulator/other/{task_id}"))
        for step in self.steps:
            at += step.after
            data = dict(step.data)
            if step.kind == "status":
                status = data["status"]
                entries.append(Entry(at, "status", {"task_id": task_id, **data}, status, retries))
            elif step.kind == "retry":
                status, retries = "queued", retries + 1
                entries.append(Entry(at, "status", {"task_id": task_id, **data}, status, retries))
            elif step.kind == "progress":
                entries.append(
                    Entry(at, "progress", {"task_id": task_id, **data}, status, retries)
                )
            elif step.kind == "error":
                entries.append(Entry(at, "error", data, status, retries))
            elif step.kind in ("keepalive", "drop"):
                entries.append(Entry(at, "", {}, status, retries, action=step.kind))
            elif step.kind == "other_task":
                fields = {"task_id": other, **data["fields"]}
                entries.append(Entry(at, data["event"], fields, status, retries, "foreign"))
            elif step.kind in TERMINAL:
                payload: Dict[str, Any] = {"task_id": task_id, "status": step.kind, **data}
                entries.append(Entry(at, step.kind, payload, step.kind, retries))
        return entries

    @property
    def duration(self) -> float:
        """Emulated seconds from the task's creation to its last step."""
        return sum(step.after for step in self.steps)


_NERF_STAGES = (
    ("download", 0.0, 0.1, 2, "downloading 24 input images"),
    ("process_data", 0.1, 0.3, 2, "COLMAP: matching features"),
    ("train", 0.3, 0.9, 6, "training step {step}/{total}"),
    ("export", 0.9, 0.95, 2, "exporting gaussian splat"),
    ("upload", 0.95, 1.0, 2, "uploading results"),
)
