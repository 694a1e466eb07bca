"""The public names and signatures the issues promised users, checked one by one.

Renaming a parameter users pass by keyword breaks their code as surely as
removing it; these tests make such a change a deliberate one.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, List, Tuple

import pytest

import cyberun
from cyberun import sse, webhooks
from cyberun.testing import CyberunEmulator

P = inspect.Parameter
POS, KW = P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY
EMPTY = P.empty

# (callable, [(name, kind, default or EMPTY or ANY), ...]) for the leading parameters promised.
ANY = object()

PROMISED: List[Tuple[str, Callable[..., Any], List[Tuple[str, Any, Any]]]] = [
    (
        "Client",
        cyberun.Client.__init__,
        [
            ("api_key", POS, None),
            ("team_id", KW, None),
            ("base_url", KW, None),
            ("transport", KW, None),
            ("timeout", KW, ANY),
            ("retry", KW, ANY),
            ("poll_interval", KW, 3.0),
        ],
    ),
    ("Client.run", cyberun.Client.run, [("workflow", POS, EMPTY), ("parameters", POS, None)]),
    ("Client.task", cyberun.Client.task, [("task_id", POS, EMPTY)]),
    ("Client.get_task", cyberun.Client.get_task, [("task_id", POS, EMPTY)]),
    (
        "Client.list_tasks",
        cyberun.Client.list_tasks,
        [("status", POS, None), ("per_page", KW, ANY)],
    ),
    ("Client.cancel", cyberun.Client.cancel, [("task_id", POS, EMPTY)]),
    ("Client.get_result", cyberun.Client.get_result, [("task_id", POS, EMPTY)]),
    ("Client.list_workflows", cyberun.Client.list_workflows, []),
    ("Client.get_workflow", cyberun.Client.get_workflow, [("id_or_slug", POS, EMPTY)]),
    ("Client.events", cyberun.Client.events, [("task_id", POS, EMPTY), ("mode", KW, "auto")]),
    (
        "Client.wait",
        cyberun.Client.wait,
        [
            ("task_id", POS, EMPTY),
            ("timeout", KW, None),
            ("on_event", KW, None),
            ("mode", KW, "auto"),
            ("cancel_on_timeout", KW, False),
        ],
    ),
    (
        "Client.download",
        cyberun.Client.download,
        [
            ("task_or_result", POS, EMPTY),
            ("dest_dir", POS, EMPTY),
            ("overwrite", KW, False),
            ("on_progress", KW, None),
        ],
    ),
    (
        "Client.as_completed",
        cyberun.Client.as_completed,
        [("task_ids", POS, EMPTY), ("max_streams", KW, 8), ("timeout", KW, None)],
    ),
    (
        "SSEParser",
        sse.SSEParser.__init__,
        [("max_line_size", POS, ANY), ("max_event_size", POS, ANY)],
    ),
    ("SSEParser.feed", sse.SSEParser.feed, [("data", POS, EMPTY)]),
    ("iter_events", sse.iter_events, [("chunks", POS, EMPTY)]),
    ("RequestsTransport", cyberun.RequestsTransport.__init__, [("session", POS, None)]),
    ("Urllib3Transport", cyberun.Urllib3Transport.__init__, [("pool", POS, None)]),
    ("MockTransport", cyberun.MockTransport.__init__, [("handler", POS, EMPTY)]),
    (
        "Request",
        cyberun.Request.__init__,
        [("method", POS, EMPTY), ("url", POS, EMPTY), ("headers", POS, ANY), ("body", POS, None)],
    ),
    (
        "Response",
        cyberun.Response.__init__,
        [
            ("status", POS, EMPTY),
            ("headers", POS, ANY),
            ("content", ANY, ANY),
            ("stream", ANY, ANY),
            ("close", ANY, None),
        ],
    ),
    ("Timeout", cyberun.Timeout.__init__, [("connect", POS, ANY), ("read", POS, ANY)]),
    (
        "verify_signature",
        webhooks.verify_signature,
        [("body", POS, EMPTY), ("header", POS, EMPTY), ("secret", POS, EMPTY)],
    ),
    (
        "parse_delivery",
        webhooks.parse_delivery,
        [("body", POS, EMPTY), ("headers", POS, EMPTY), ("secret", POS, EMPTY)],
    ),
    (
        "CyberunEmulator",
        CyberunEmulator.__init__,
        [
            ("time_scale", KW, ANY),
            ("url_ttl", KW, ANY),
            ("seed", KW, ANY),
            ("storage_host", KW, "127.0.0.2"),
        ],
    ),
    (
        "CyberunEmulator.inject",
        CyberunEmulator.inject,
        [("fault", POS, EMPTY), ("route", KW, None), ("task_id", KW, None), ("times", KW, 1)],
    ),
]


@pytest.mark.parametrize(("name", "function", "promised"), PROMISED, ids=[p[0] for p in PROMISED])
def test_promised_signature(
    name: str, function: Callable[..., Any], promised: List[Tuple[str, Any, Any]]
) -> None:
    parameters = {
        p.name: p for p in inspect.signature(function).parameters.values() if p.name != "self"
    }
    for parameter, kind, default in promised:
        assert parameter in parameters, f"{name} lost its parameter {parameter!r}"
        actual = parameters[parameter]
        if kind is not ANY:
            assert actual.kind == kind, f"{name}({parameter}) is now {actual.kind.description}"
        if default is not ANY:
            assert actual.default == default, f"{name}({parameter}) default changed"


def test_handle_methods_and_attributes() -> None:
    for method in ("wait", "events", "refresh", "result", "download", "cancel"):
        assert callable(getattr(cyberun.TaskHandle, method))
    for name in ("CyberunEmulator", "ManualClock", "FAULTS", "ROUTES"):
        assert hasattr(cyberun.testing, name)
    for method in ("inject", "clear_faults", "add_workflow", "start", "stop"):
        assert callable(getattr(CyberunEmulator, method))
    for method in (
        "create_webhook",
        "get_webhook",
        "list_webhooks",
        "update_webhook",
        "delete_webhook",
        "rotate_webhook_secret",
    ):
        assert callable(getattr(cyberun.Client, method))
    assert {"event", "data", "id", "retry"} <= set(sse.ServerSentEvent._fields)
