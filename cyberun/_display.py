"""Showing a task's progress on a terminal: a live bar, or one line per change.

The bar uses tqdm (the optional ``cli`` extra) when it is installed and the
output is a terminal; otherwise progress is printed as plain lines, one per
change, which keeps logs and CI output clean.
Server text in events is made visible (``cyberun._terminal``) before it is shown.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Optional, Tuple

from ._terminal import visible
from .models import ErrorEvent, ProgressEvent, StatusEvent, TaskEvent, UnknownEvent

__all__ = ["Progress", "describe"]


def _size(stream: IO[str]) -> Tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


def describe(event: TaskEvent) -> str:
    """A short human description of an event, safe to print (see ``visible``)."""
    return visible(_describe(event))


def _describe(event: TaskEvent) -> str:
    if isinstance(event, StatusEvent):
        return str(event.status)
    if isinstance(event, ProgressEvent):
        parts = []
        if event.percentage is not None:
            parts.append(f"{event.percentage:.0f}%")
        if event.step_current is not None and event.step_total:
            parts.append(f"step {event.step_current}/{event.step_total}")
        if event.stage:
            parts.append(event.stage)
        if event.message:
            parts.append(event.message)
        elif event.current_node:
            parts.append(f"node {event.current_node}")
        return " · ".join(parts) or "progress"
    if isinstance(event, ErrorEvent):
        return f"server problem (following continues): {event.message}"
    if isinstance(event, UnknownEvent):
        return f"{event.event} event"
    return event.type


class Progress:
    """Renders events for one task.

    Args:
        stream: where to write (stdout by default).
        bar: "auto" (a bar when tqdm is installed and ``stream`` is a
            terminal), or True/False to force it.
    """

    def __init__(self, stream: Optional[IO[str]] = None, bar: object = "auto") -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self._bar: Any = None
        self._last_line = ""
        self._last_percent: Optional[int] = None
        if bar == "auto":
            bar = self.stream.isatty()
        if bar:
            try:
                from tqdm import tqdm
            except ImportError:  # the cli extra is not installed: plain lines
                pass
            else:
                # A terminal that reports no size (a fresh pseudo-terminal, some
                # CI runners) gets 80x24 rather than a hidden, zero-width bar.
                columns, lines = _size(self.stream)
                sized = columns > 0 and lines > 0
                self._bar = tqdm(
                    total=100,
                    file=self.stream,
                    unit="%",
                    # tqdm puts ", " before a postfix itself.
                    bar_format="{desc:<12} {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                    dynamic_ncols=sized,
                    ncols=None if sized else 80,
                    nrows=None if sized else 24,
                    leave=True,
                )
                self._bar.set_description_str("pending")

    @property
    def uses_bar(self) -> bool:
        """True when a live bar is shown."""
        return self._bar is not None

    def update(self, event: TaskEvent) -> None:
        """Show one event."""
        if self._bar is not None:
            self._update_bar(event)
        else:
            self._update_lines(event)

    def _update_bar(self, event: TaskEvent) -> None:
        bar = self._bar
        if isinstance(event, StatusEvent):
            bar.set_description_str(visible(event.status))
        elif isinstance(event, ProgressEvent):
            if event.percentage is not None:
                bar.n = event.percentage
            details = describe(event).split(" · ", 1)
            bar.set_postfix_str(details[1] if len(details) > 1 else "", refresh=False)
            bar.set_description_str(visible(event.stage or "running"))
        elif isinstance(event, ErrorEvent):
            bar.write(describe(event), file=self.stream)  # above the bar, same stream
        elif event.is_terminal:
            if event.type == "completed":
                bar.n = 100
            bar.set_description_str(visible(event.type))
        bar.refresh()

    def _update_lines(self, event: TaskEvent) -> None:
        if isinstance(event, ProgressEvent) and event.percentage is not None:
            percent = int(event.percentage)
            if percent == self._last_percent and not event.stage:
                return  # one line per change: whole percents
            self._last_percent = percent
        line = describe(event)
        if line == self._last_line:
            return
        self._last_line = line
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{int(elapsed // 60):02d}:{elapsed % 60:04.1f}] {line}\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar (a clean final line) or do nothing."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
