"""The built-in workflows, their timelines and their result files.

Everything here produces wire-format dictionaries directly (the shapes in
the API documentation), independently of the SDK's models.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from typing import Any, Callable, Dict, List, Mapping, Union

from ._records import Entry, OutputFile, TaskRecord, WorkflowSpec
from ._timeline import Timeline

__all__ = ["TimelineSource", "builtin_workflows", "png_bytes", "script_for", "seed_for"]

#: A timeline, or a function of the run parameters that returns one.
TimelineSource = Union[Timeline, Callable[[Mapping[str, Any]], Timeline]]


def script_for(source: TimelineSource) -> Callable[[str, Dict[str, Any]], List[Entry]]:
    """The entries of a task from a timeline (or a function of the parameters)."""

    def script(task_id: str, parameters: Dict[str, Any]) -> List[Entry]:
        timeline = source if isinstance(source, Timeline) else source(dict(parameters))
        if not isinstance(timeline, Timeline):
            raise TypeError(
                f"a timeline function returned {type(timeline).__name__}, not Timeline"
            )
        return timeline.entries(task_id)

    return script


def _steps(parameters: Mapping[str, Any], default: int, low: int = 1, high: int = 150) -> int:
    value = parameters.get("steps", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return max(low, min(high, int(value)))


def comfy_timeline(default_steps: int, step_seconds: float = 0.1) -> TimelineSource:
    """A ComfyUI render whose tick count is the ``steps`` parameter."""

    def build(parameters: Mapping[str, Any]) -> Timeline:
        steps = _steps(parameters, default_steps, high=10_000)
        return Timeline.comfyui(steps, step_seconds=step_seconds)

    return build


def failing_timeline(error: str) -> Timeline:
    """A ComfyUI run that fails on the sampler node after five of twenty steps."""
    ticks = Timeline.queue()
    for step in range(1, 6):
        ticks = ticks.progress(
            round(step / 20, 4), after=0.1, step_current=step, step_total=20, current_node="3"
        )
    return ticks.fail(error, after=0.3)


OUT_OF_MEMORY = "ComfyUI execution error: CUDA out of memory (node 3, KSampler)"


def nerf_timeline(parameters: Mapping[str, Any]) -> Timeline:
    """A Nerfstudio run over the ``iterations`` parameter."""
    value = parameters.get("iterations", 30_000)
    iterations = 30_000 if isinstance(value, bool) or not isinstance(value, int) else value
    return Timeline.nerfstudio(max(iterations, 1))


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
            script=script_for(comfy_timeline(10)),
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
            script=script_for(comfy_timeline(20)),
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
            script=script_for(nerf_timeline),
            outputs=_splat_outputs,
        ),
        WorkflowSpec(
            slug="always-fails",
            display_name="Always fails",
            description="A ComfyUI workflow that runs out of GPU memory.",
            tool_type="comfyui",
            parameters=[_prompt_param(required=False)],
            script=script_for(failing_timeline(OUT_OF_MEMORY)),
            outputs=lambda task: [],
        ),
        WorkflowSpec(
            slug="slow-render",
            display_name="Slow render",
            description="A long ComfyUI render: 600 steps of one emulated second.",
            tool_type="comfyui",
            parameters=[_prompt_param(required=False), _steps_param(600, 10_000)],
            script=script_for(comfy_timeline(600, 1.0)),
            outputs=_image_outputs(1, cloud=False),
        ),
        WorkflowSpec(
            slug="multi-output",
            display_name="Image batch (cloud)",
            description="A ComfyUI Cloud batch: three images in download_urls.",
            tool_type="comfyui",
            dispatch_target="comfy_cloud",
            parameters=[_prompt_param(), _steps_param(8, 50)],
            script=script_for(comfy_timeline(8)),
            outputs=_image_outputs(3, cloud=True),
        ),
        WorkflowSpec(
            slug="retired-workflow",
            display_name="Retired workflow",
            description="A disabled workflow: it rejects new tasks.",
            tool_type="comfyui",
            workflow_status="disabled",
            parameters=[],
            script=script_for(comfy_timeline(5)),
            outputs=_image_outputs(1, cloud=False),
        ),
    ]


def seed_for(base: int, task_id: str) -> int:
    """A per-task seed derived from the emulator's seed."""
    digest = hashlib.sha256(f"{base}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
