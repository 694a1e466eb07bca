"""The CLI's progress display: plain lines, and the live bar on a terminal."""

from __future__ import annotations

import io

import pytest

from cyberun import (
    CancelledEvent,
    CompletedEvent,
    ErrorEvent,
    FailedEvent,
    ProgressEvent,
    StatusEvent,
    UnknownEvent,
)
from cyberun._display import Progress, describe


class FakeTerminal(io.StringIO):
    """A terminal that reports no size, like a fresh pseudo-terminal."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("no real descriptor")


def test_every_event_has_a_short_description() -> None:
    assert describe(StatusEvent(status="queued")) == "queued"
    assert (
        describe(ProgressEvent(progress=0.25, step_current=5, step_total=20, current_node="3"))
        == "25% · step 5/20 · node 3"
    )
    nerf = ProgressEvent(progress=0.5, stage="train", message="step 1000/2000")
    assert describe(nerf) == "50% · train · step 1000/2000"
    assert describe(ProgressEvent()) == "progress"
    assert describe(ErrorEvent(message="db timeout")).endswith("(following continues): db timeout")
    assert describe(UnknownEvent(event="heartbeat")) == "heartbeat event"
    assert describe(CompletedEvent()) == "completed"
    assert describe(FailedEvent(error="x")) == "failed"
    assert describe(CancelledEvent()) == "cancelled"


def test_plain_lines_show_each_change_once() -> None:
    out = io.StringIO()
    progress = Progress(out, bar=False)
    assert not progress.uses_bar
    for event in [
        StatusEvent(status="running"),
        ProgressEvent(progress=0.101),
        ProgressEvent(progress=0.104),  # the same whole percent: not repeated
        ProgressEvent(progress=0.2, stage="train"),
        ProgressEvent(progress=0.2, stage="train"),  # the same line: not repeated
        CompletedEvent(),
    ]:
        progress.update(event)
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "running",
        "10%",
        "20% · train",
        "completed",
    ]
    assert all(line.startswith("[00:0") for line in lines)


def test_a_terminal_without_a_size_gets_an_80_column_bar() -> None:
    pytest.importorskip("tqdm")
    terminal = FakeTerminal()
    progress = Progress(terminal)  # "auto": a terminal, so a bar
    assert progress.uses_bar
    for event in [
        StatusEvent(status="running"),
        ProgressEvent(progress=0.5, step_current=10, step_total=20, current_node="3"),
        ErrorEvent(message="transient"),
        CompletedEvent(),
    ]:
        progress.update(event)
    progress.close()
    progress.close()  # idempotent
    screen = terminal.getvalue()
    assert "completed" in screen and "100%" in screen and "step 10/20" in screen
    assert "server problem (following continues): transient" in screen  # on the same stream
    assert " , " not in screen  # the postfix follows the elapsed time directly
    last = screen.replace("\r", "\n").strip().splitlines()[-1]
    assert 40 < len(last) <= 80  # drawn at the fallback width, not hidden at zero


def test_a_failed_task_leaves_the_bar_short_of_full() -> None:
    pytest.importorskip("tqdm")
    terminal = FakeTerminal()
    progress = Progress(terminal, bar=True)
    progress.update(ProgressEvent(progress=0.3))
    progress.update(FailedEvent(error="oom"))
    progress.close()
    last = terminal.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("failed") and " 30%" in last
