"""Following a task by polling ``GET /tasks/{id}``.

One GET every ``poll_interval`` seconds (jittered by up to 10% so that many
clients do not poll in lockstep). A status event is emitted only when the
status changes, and polling ends with the same terminal event the stream
would have given. Errors are retried by the API layer's retry policy.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

from ..api import Endpoints
from ..models import TaskEvent
from ._common import Control, Progression, confirm_events

__all__ = ["follow_polling"]

_RNG = random.Random()


def follow_polling(
    api: Endpoints,
    task_id: str,
    *,
    control: Control,
    progression: Progression,
    poll_interval: float,
    random_source: Callable[[], float] = _RNG.random,
) -> Iterator[TaskEvent]:
    """Yield status changes and the terminal event of a task, polling it."""
    while True:
        control.check()
        task = api.get_task(task_id)
        for event in confirm_events(task, progression, statuses=True):
            yield event
            if event.is_terminal:
                return
        jitter = 1.0 + (random_source() - 0.5) * 0.2
        control.sleep(poll_interval * jitter)
