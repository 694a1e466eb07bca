"""Mistakes users make: each line marked ``# error`` must be a type error (mypy and pyright).

Checked by tests/typing/test_typing.py, never run. Every other line must be clean.
Linters and formatters leave this file alone: its mistakes are on purpose.
"""
# ruff: noqa
# fmt: off

from __future__ import annotations

import cyberun
from cyberun import Client, RetryPolicy, SSELimitError, SubmissionUncertain, TaskError
from cyberun import Clinet  # error


def mistakes(client: Client) -> None:
    print(cyberun.Clinet)  # error
    client.run("text-to-image", {"prompt": "x"}, valdiate=True)  # error
    client.run("text-to-image", {"prompt": "x"}, timeout=5)  # error
    client.run("text-to-image", {"prompt": "x"}, dispatch_targt="agent")  # error
    client.run("text-to-image", prompt="x")  # error
    client.run("text-to-image", dispatch_target="agnet")  # error
    client.run_and_wait("text-to-image", {"prompt": "x"}, mode="streem")  # error
    client.wait("task", mode="streem")  # error
    client.events("task", mode="pol")  # error
    client.list_tasks("runing")  # error
    RetryPolicy().replace(atempts=3)  # error


def attributes(
    task_error: TaskError, uncertain: SubmissionUncertain, limit: SSELimitError
) -> None:
    print(task_error.task.no_such_field)  # error
    print(uncertain.submitted_at.no_such_field)  # error
    print(limit.events[0].no_such_field)  # error
