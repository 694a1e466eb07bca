"""Webhook verification: known answers, tampering, header variants, and a real delivery."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cyberun
from cyberun.errors import ConfigurationError, DecodeError, InvalidSignature
from cyberun.models import WebhookEventType
from cyberun.testing import CyberunEmulator, ManualClock
from cyberun.webhooks import DeliveryDeduplicator, parse_delivery, sign, verify_signature

SECRET = "whsec_test_1234567890abcdef"
BODY = json.dumps(
    {
        "event_type": "task.completed",
        "task_id": "019abc12-9012-7890-abcd-ef1234567896",
        "task_status": "completed",
        "task_output": {"storage_key": "tasks/x/output.png", "image_count": 1},
        "task_error": "",
        "timestamp": "2026-02-01T14:31:30Z",
    }
).encode()


def independent_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_rfc_4231_known_answer() -> None:
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign(b"what do ya want for nothing?", "Jefe") == "sha256=" + expected
    verify_signature(b"what do ya want for nothing?", "sha256=" + expected, "Jefe")


def test_a_genuine_delivery_verifies() -> None:
    verify_signature(BODY, independent_signature(BODY, SECRET), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        independent_signature(BODY, SECRET).upper().replace("SHA256=", "sha256="),
        "SHA256=" + independent_signature(BODY, SECRET)[7:],
        "  " + independent_signature(BODY, SECRET) + " \t",
        "sha256 = " + independent_signature(BODY, SECRET)[7:],
    ],
)
def test_header_variants_that_are_still_valid(header: str) -> None:
    verify_signature(BODY, header, SECRET)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("sha1=" + "a" * 40, "unsupported signature scheme"),
        (hashlib.sha256(BODY).hexdigest(), "unsupported signature scheme"),
        ("sha256=", "malformed"),
        ("sha256=xyz" + "0" * 61, "malformed"),
        ("sha256=" + "0" * 63, "malformed"),
        ("sha256=" + "0" * 65, "malformed"),
        ("sha256=" + "0" * 64, "mismatch"),
    ],
)
def test_bad_headers_are_refused(header: Any, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_signature(BODY, header, SECRET)


def test_a_tampered_body_is_refused() -> None:
    header = independent_signature(BODY, SECRET)
    with pytest.raises(InvalidSignature, match="mismatch"):
        verify_signature(BODY.replace(b"completed", b"failed", 1), header, SECRET)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY + b" ", header, SECRET)


def test_the_wrong_secret_is_refused_and_the_whole_secret_is_the_key() -> None:
    header = independent_signature(BODY, SECRET)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, "whsec_other")
    without_prefix = SECRET[len("whsec_") :]
    with pytest.raises(InvalidSignature):  # the key is the whole secret, prefix included
        verify_signature(BODY, independent_signature(BODY, without_prefix), SECRET)


def test_several_secrets_during_a_rotation() -> None:
    header = independent_signature(BODY, "whsec_new")
    verify_signature(BODY, header, ["whsec_old", "whsec_new"])
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, ["whsec_old"])


def test_a_secret_is_required_and_the_body_must_be_bytes() -> None:
    with pytest.raises(ConfigurationError):
        verify_signature(BODY, "sha256=" + "0" * 64, "")
    with pytest.raises(TypeError, match="bytes"):
        verify_signature(BODY.decode(), "sha256=" + "0" * 64, SECRET)  # type: ignore[arg-type]


@given(
    data=st.binary(min_size=1, max_size=300),
    position=st.integers(min_value=0),
    change=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_fails(data: bytes, position: int, change: int) -> None:
    header = independent_signature(data, SECRET)
    verify_signature(data, header, SECRET)
    index = position % len(data)
    altered = data[:index] + bytes([(data[index] + change) % 256]) + data[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_signature(altered, header, SECRET)


# --- parse_delivery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Signature-256": independent_signature(BODY, SECRET)},
        {"x-webhook-signature-256": independent_signature(BODY, SECRET)},
        {"HTTP_X_WEBHOOK_SIGNATURE_256": independent_signature(BODY, SECRET)},  # a WSGI environ
        [("X-WEBHOOK-SIGNATURE-256", independent_signature(BODY, SECRET))],
    ],
)
def test_parse_delivery_finds_the_header_in_any_form(headers: Any) -> None:
    delivery = parse_delivery(BODY, headers, SECRET)
    assert delivery.event_type == WebhookEventType.TASK_COMPLETED
    assert delivery.task_id == "019abc12-9012-7890-abcd-ef1234567896"
    assert delivery.task_output == {"storage_key": "tasks/x/output.png", "image_count": 1}
    assert delivery.timestamp == datetime(2026, 2, 1, 14, 31, 30, tzinfo=timezone.utc)


def test_unknown_event_types_are_kept() -> None:
    body = json.dumps(
        {"event_type": "task.retried", "task_id": "t", "task_status": "queued"}
    ).encode()
    delivery = parse_delivery(body, {"X-Webhook-Signature-256": sign(body, SECRET)}, SECRET)
    assert delivery.event_type == "task.retried" and not delivery.event_type.is_known


def test_a_signed_body_that_is_not_json_is_a_decode_error() -> None:
    body = b"not json"
    with pytest.raises(DecodeError):
        parse_delivery(body, {"X-Webhook-Signature-256": sign(body, SECRET)}, SECRET)


def test_an_unsigned_delivery_is_not_even_parsed() -> None:
    with pytest.raises(InvalidSignature):
        parse_delivery(b"not json", {}, SECRET)


def test_optional_staleness_check() -> None:
    headers = {"X-Webhook-Signature-256": sign(BODY, SECRET)}
    sent = datetime(2026, 2, 1, 14, 31, 30, tzinfo=timezone.utc)
    assert parse_delivery(
        BODY, headers, SECRET, tolerance=600, now=lambda: sent + timedelta(minutes=3)
    )
    with pytest.raises(InvalidSignature, match="stale"):
        parse_delivery(BODY, headers, SECRET, tolerance=600, now=lambda: sent + timedelta(hours=1))
    no_time = json.dumps({"event_type": "task.failed", "task_id": "t"}).encode()
    with pytest.raises(InvalidSignature, match="no timestamp"):
        parse_delivery(
            no_time, {"X-Webhook-Signature-256": sign(no_time, SECRET)}, SECRET, tolerance=60
        )


def test_deduplicator_remembers_deliveries() -> None:
    clock = [0.0]
    guard = DeliveryDeduplicator(max_entries=2, ttl=100, clock=lambda: clock[0])
    first = parse_delivery(BODY, {"X-Webhook-Signature-256": sign(BODY, SECRET)}, SECRET)
    assert guard.first_time(first) is True
    assert guard.first_time(first) is False
    guard.forget(first)
    assert guard.first_time(first) is True
    clock[0] = 200.0  # past the ttl: forgotten
    assert guard.first_time(first) is True


# --- a real delivery to the documented WSGI receiver ---------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "content" / "examples" / "webhook_wsgi.py"


def load_example(secret: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_wsgi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SECRET = secret  # type: ignore[attr-defined]
    return module


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Dict[str, Any]]:
    state: Dict[str, Any] = {"handled": [], "fail_first": True}
    module = load_example("")

    def handle(delivery: Any) -> None:
        if state["fail_first"]:
            state["fail_first"] = False
            raise RuntimeError("the first attempt fails")
        state["handled"].append(delivery)

    module.handle_delivery = handle  # type: ignore[attr-defined]
    server = make_server("127.0.0.1", 0, module.app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["module"] = module
    state["url"] = f"http://127.0.0.1:{server.server_port}/cyberun"
    yield state
    server.shutdown()
    server.server_close()


def test_end_to_end_deliveries_are_verified_retried_and_handled_once(
    receiver: Dict[str, Any],
) -> None:
    with CyberunEmulator(clock=ManualClock()) as server, cyberun.Client(
        server.device_key, base_url=server.base_url
    ) as client:
        hook = client.create_webhook(receiver["url"], name="ci receiver")
        assert hook.webhook_secret is not None
        receiver["module"].SECRET = hook.webhook_secret
        done = client.run("text-to-image", {"prompt": "x", "steps": 2})
        failed = client.run("always-fails")
        server.advance(20)
        deadline = time.monotonic() + 10
        while len(receiver["handled"]) < 2 and time.monotonic() < deadline:
            server.advance(10)  # let the retry schedule run
            time.sleep(0.05)
    handled = {(d.task_id, str(d.event_type)) for d in receiver["handled"]}
    assert handled == {(done.id, "task.completed"), (failed.id, "task.failed")}
    assert len(receiver["handled"]) == 2  # once each
    statuses = [d.status for d in server.webhook_deliveries]
    assert 500 in statuses and statuses.count(204) >= 2


def test_the_wsgi_receiver_refuses_bad_signatures(receiver: Dict[str, Any]) -> None:
    import http.client
    from urllib.parse import urlsplit

    receiver["module"].SECRET = SECRET
    parts = urlsplit(receiver["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request(
        "POST", parts.path, body=BODY, headers={"X-Webhook-Signature-256": "sha256=" + "0" * 64}
    )
    assert conn.getresponse().status == 401
    conn.close()
    environ = {"REQUEST_METHOD": "GET"}
    assert receiver["module"].app(environ, lambda status, headers: None) == [b""]


def test_webhook_management_needs_a_jwt_or_device_key() -> None:
    with CyberunEmulator() as server:
        with cyberun.Client(server.api_key, base_url=server.base_url) as client, pytest.raises(
            cyberun.PermissionDenied
        ):
            client.create_webhook("https://example.com/hook")
        with cyberun.Client(
            server.jwt, team_id=server.team_id, base_url=server.base_url
        ) as client:
            hook = client.create_webhook("https://example.com/hook", ["task.failed"], name="jwt")
            assert [w.id for w in client.list_webhooks()] == [hook.id]
            updated = client.update_webhook(
                hook.id,
                url="https://example.com/new",
                events=["task.completed"],
                name="n",
                active=False,
            )
            assert (
                updated.webhook_url,
                updated.webhook_events,
                updated.display_name,
                updated.is_active,
            ) == ("https://example.com/new", ["task.completed"], "n", False)
            assert client.get_webhook(hook.id).id == hook.id
            assert client.rotate_webhook_secret(hook.id).startswith("whsec_")
            client.delete_webhook(hook.id)
            assert list(client.list_webhooks()) == []
