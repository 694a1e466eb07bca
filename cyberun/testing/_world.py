"""The emulated world: workflows, tasks as timelines, and their result files.

Everything here produces wire-format dictionaries directly (the shapes in
the API documentation), independently of the SDK's models.
"""

from __future__ import annotations

import hashlib
import random
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["Entry", "OutputFile", "TaskRecord", "WorkflowSpec", "builtin_workflows"]

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Entry:
    """One thing that happens to a task at an emulated time: one SSE event."""

    time: float
    event: str  # status | progress | completed | failed | cancelled | error
    data: Dict[str, Any]
    status: str  # the task's status from this entry on


@dataclass
class OutputFile:
    """A result file in emulated storage."""

    key: str  # the output key: "" for the primary download_url, else e.g. "9.images.0"
    storage_key: str  # the object's path in the bucket
    content: bytes
    content_type: str


@dataclass
class WorkflowSpec:
    """A workflow the emulator can run, with how its tasks unfold."""

    slug: str
    display_name: str
    description: str
    tool_type: str
    parameters: List[Dict[str, Any]]
    script: Callable[[TaskRecord], List[Entry]]
    outputs: Callable[[TaskRecord], List[OutputFile]]
    version: int = 1
    dispatch_target: str = "agent"
    workflow_status: str = "active"
    task_timeout: int = 0
    id: str = ""
    created_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.id:
            self.id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"cyberun-emulator/{self.slug}@{self.version}")
            )


@dataclass
class TaskRecord:
    """A task: its request, its timeline, and (once done) its files."""

    id: str
    workflow: WorkflowSpec
    parameters: Dict[str, Any]
    created: float  # emulated time
    source: str  # "api_key" or "jwt"
    team_id: str
    seed: int
    options: Dict[str, Any] = field(default_factory=dict)
    timeline: List[Entry] = field(default_factory=list)
    outputs: List[OutputFile] = field(default_factory=list)

    def entries_until(self, now: float) -> List[Entry]:
        """The timeline entries that have happened by ``now``."""
        return [entry for entry in self.timeline if entry.time <= now]

    def current(self, now: float) -> Tuple[str, Optional[Entry]]:
        """(status, terminal entry or None) at ``now``."""
        status = "pending"
        terminal = None
        for entry in self.entries_until(now):
            status = entry.status
            if entry.event in TERMINAL:
                terminal = entry
        return status, terminal

    def time_of(self, status: str) -> Optional[float]:
        """When the task first entered ``status``."""
        return next((e.time for e in self.timeline if e.status == status), None)

    def cancel(self, now: float) -> bool:
        """Cancel at ``now`` unless already terminal; True when it changed anything."""
        _, terminal = self.current(now)
        if terminal is not None:
            return False
        self.timeline = [e for e in self.timeline if e.time <= now]
        self.timeline.append(
            Entry(now, "cancelled", {"task_id": self.id, "status": "cancelled"}, "cancelled")
        )
        return True


def rfc3339(base: datetime, emulated: float) -> str:
    """Wall time for an emulated instant, RFC 3339 with milliseconds and Z."""
    moment = base + timedelta(seconds=emulated)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- timeline scripts --------------------------------------------------------------


def _status(task: TaskRecord, at: float, status: str) -> Entry:
    return Entry(at, "status", {"task_id": task.id, "status": status}, status)


def _completed(task: TaskRecord, at: float, output: Any) -> Entry:
    return Entry(
        at, "completed", {"task_id": task.id, "status": "completed", "output": output}, "completed"
    )


def _queue(task: TaskRecord, provisioning: bool = False) -> Tuple[List[Entry], float]:
    entries = [_status(task, 0.0, "pending"), _status(task, 0.3, "waiting")]
    at = 0.6
    if provisioning:
        entries.append(_status(task, at, "provisioning"))
        at += 1.0
    entries.append(_status(task, at, "queued"))
    entries.append(_status(task, at + 0.4, "running"))
    return entries, at + 0.4


def _steps(task: TaskRecord, default: int, low: int = 1, high: int = 150) -> int:
    value = task.parameters.get("steps", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return max(low, min(high, int(value)))


def comfy_script(step_seconds: float, default_steps: int) -> Callable[[TaskRecord], List[Entry]]:
    """A ComfyUI run: queue, then step ticks on the sampler node, then completion."""

    def script(task: TaskRecord) -> List[Entry]:
        entries, at = _queue(task)
        steps = _steps(task, default_steps, high=10_000)
        for step in range(1, steps + 1):
            entries.append(
                Entry(
                    at + step * step_seconds,
                    "progress",
                    {
                        "task_id": task.id,
                        "progress": round(step / steps, 4),
                        "step_current": step,
                        "step_total": steps,
                        "current_node": "3",
                    },
                    "running",
                )
            )
        end = at + steps * step_seconds + 0.3
        output = {
            "storage_key": task.outputs[0].storage_key if task.outputs else "",
            "image_count": len(task.outputs),
        }
        if task.workflow.dispatch_target == "comfy_cloud":
            output = {
                f.key: {"s3_key": f.storage_key, "content_type": f.content_type}
                for f in task.outputs
            }
        entries.append(_completed(task, end, output))
        return entries

    return script


def failing_script(task: TaskRecord) -> List[Entry]:
    """A ComfyUI run that fails on the sampler node."""
    entries, at = _queue(task)
    for step in range(1, 6):
        entries.append(
            Entry(
                at + step * 0.1,
                "progress",
                {
                    "task_id": task.id,
                    "progress": round(step / 20, 4),
                    "step_current": step,
                    "step_total": 20,
                    "current_node": "3",
                },
                "running",
            )
        )
    entries.append(
        Entry(
            at + 0.8,
            "failed",
            {
                "task_id": task.id,
                "status": "failed",
                "error": "ComfyUI execution error: CUDA out of memory (node 3, KSampler)",
            },
            "failed",
        )
    )
    return entries


NERF_STAGES = [
    ("download", 0.0, 0.1, "downloading {n} input images"),
    ("process_data", 0.1, 0.3, "COLMAP: matching features"),
    ("train", 0.3, 0.9, "training step {step}/{total}"),
    ("export", 0.9, 0.95, "exporting gaussian splat"),
    ("upload", 0.95, 1.0, "uploading results"),
]


def nerf_script(task: TaskRecord) -> List[Entry]:
    """A Nerfstudio run: provisioning, then stages with messages, then completion."""
    entries, at = _queue(task, provisioning=True)
    total = (
        _steps(task, 30_000, low=100, high=1_000_000)
        if "iterations" not in task.parameters
        else int(task.parameters["iterations"])
    )
    ticks = 0
    for stage, start, stop, message in NERF_STAGES:
        count = 6 if stage == "train" else 2
        for i in range(1, count + 1):
            ticks += 1
            fraction = start + (stop - start) * i / count
            step = int(total * (i / count)) if stage == "train" else None
            data: Dict[str, Any] = {
                "task_id": task.id,
                "progress": round(fraction, 4),
                "stage": stage,
                "message": message.format(n=24, step=step, total=total),
            }
            if step is not None:
                data["step_current"] = step
                data["step_total"] = total
            entries.append(Entry(at + ticks * 0.2, "progress", data, "running"))
    end = at + ticks * 0.2 + 0.3
    output = {"storage_key": task.outputs[0].storage_key if task.outputs else "", "format": "ply"}
    entries.append(_completed(task, end, output))
    return entries


# --- result files -------------------------------------------------------------------


def png_bytes(seed: int, size: int = 64) -> bytes:
    """A small, valid PNG: a gradient whose colours depend on ``seed``."""
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type: none
        for x in range(size):
            row += bytes(
                ((base[0] + 3 * x) % 256, (base[1] + 3 * y) % 256, (base[2] + x + y) % 256)
            )
        rows.append(bytes(row))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def ply_bytes(seed: int, points: int = 2000) -> bytes:
    """A small ASCII PLY point cloud."""
    rng = random.Random(seed)
    lines = [
        "ply",
        "format ascii 1.0",
        f"element vertex {points}",
        "property float x",
        "property float y",
        "property float z",
        "end_header",
    ]
    lines += [
        f"{rng.uniform(-1, 1):.4f} {rng.uniform(-1, 1):.4f} {rng.uniform(-1, 1):.4f}"
        for _ in range(points)
    ]
    return ("\n".join(lines) + "\n").encode()


def _image_outputs(count: int, cloud: bool) -> Callable[[TaskRecord], List[OutputFile]]:
    def outputs(task: TaskRecord) -> List[OutputFile]:
        files = []
        for index in range(count):
            key = f"9.images.{index}" if cloud else ""
            name = f"output_{index + 1:05d}_.png"
            prefix = "outputs" if cloud else "tasks"
            files.append(
                OutputFile(
                    key=key,
                    storage_key=f"{prefix}/{task.id}/{name}",
                    content=png_bytes(task.seed * 31 + index),
                    content_type="image/png",
                )
            )
        return files

    return outputs


def _splat_outputs(task: TaskRecord) -> List[OutputFile]:
    return [
        OutputFile(
            key="",
            storage_key=f"tasks/{task.id}/splat.ply",
            content=ply_bytes(task.seed),
            content_type="application/octet-stream",
        )
    ]


def _prompt_param(required: bool = True) -> Dict[str, Any]:
    return {
        "key": "prompt",
        "type": "string",
        "label": "Prompt",
        "description": "What to draw",
        "required": required,
        "node_id": "6",
        "field": "text",
    }


def _steps_param(default: int, high: int) -> Dict[str, Any]:
    return {
        "key": "steps",
        "type": "number",
        "label": "Steps",
        "required": False,
        "default": default,
        "min": 1,
        "max": high,
        "node_id": "3",
        "field": "steps",
    }


def builtin_workflows() -> List[WorkflowSpec]:
    """The workflows every emulator starts with; their slugs are stable."""
    sampler = {
        "key": "sampler",
        "type": "select",
        "label": "Sampler",
        "required": False,
        "default": "euler",
        "options": ["euler", "euler_ancestral", "dpmpp_2m"],
        "node_id": "3",
        "field": "sampler_name",
    }
    return [
        WorkflowSpec(
            slug="text-to-image",
            version=1,
            display_name="Text to image (v1)",
            description="ComfyUI SDXL text-to-image, first version.",
            tool_type="comfyui",
            parameters=[_prompt_param(), _steps_param(10, 50)],
            script=comfy_script(0.1, 10),
            outputs=_image_outputs(1, cloud=False),
        ),
        WorkflowSpec(
            slug="text-to-image",
            version=2,
            display_name="Text to image",
            description="ComfyUI SDXL text-to-image: one PNG.",
            tool_type="comfyui",
            parameters=[
                _prompt_param(),
                _steps_param(20, 50),
                sampler,
                {"key": "seed", "type": "number", "label": "Seed", "required": False},
            ],
            script=comfy_script(0.1, 20),
            outputs=_image_outputs(1, cloud=False),
        ),
        WorkflowSpec(
            slug="gaussian-splat",
            display_name="Gaussian splat",
            description="Nerfstudio 3D Gaussian splatting from a set of photos.",
            tool_type="nerfstudio",
            parameters=[
                {
                    "key": "images",
                    "type": "file",
                    "label": "Images (zip)",
                    "required": True,
                    "accept": [".zip", "application/zip"],
                    "source_key": "images",
                },
                {
                    "key": "iterations",
                    "type": "number",
                    "label": "Iterations",
                    "required": False,
                    "default": 30000,
                    "min": 100,
                    "max": 100000,
                },
            ],
            script=nerf_script,
            outputs=_splat_outputs,
        ),
        WorkflowSpec(
            slug="always-fails",
            display_name="Always fails",
            description="A ComfyUI workflow that runs out of GPU memory.",
            tool_type="comfyui",
            parameters=[_prompt_param(required=False)],
            script=failing_script,
            outputs=lambda task: [],
        ),
        WorkflowSpec(
            slug="slow-render",
            display_name="Slow render",
            description="A long ComfyUI render: 600 steps of one emulated second.",
            tool_type="comfyui",
            parameters=[_prompt_param(required=False), _steps_param(600, 10_000)],
            script=comfy_script(1.0, 600),
            outputs=_image_outputs(1, cloud=False),
        ),
        WorkflowSpec(
            slug="multi-output",
            display_name="Image batch (cloud)",
            description="A ComfyUI Cloud batch: three images in download_urls.",
            tool_type="comfyui",
            dispatch_target="comfy_cloud",
            parameters=[_prompt_param(), _steps_param(8, 50)],
            script=comfy_script(0.1, 8),
            outputs=_image_outputs(3, cloud=True),
        ),
        WorkflowSpec(
            slug="retired-workflow",
            display_name="Retired workflow",
            description="A disabled workflow: it rejects new tasks.",
            tool_type="comfyui",
            workflow_status="disabled",
            parameters=[],
            script=comfy_script(0.1, 5),
            outputs=_image_outputs(1, cloud=False),
        ),
    ]


def seed_for(base: int, task_id: str) -> int:
    """A per-task seed derived from the emulator's seed."""
    digest = hashlib.sha256(f"{base}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
