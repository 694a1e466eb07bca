"""The one retry decision: its table, and properties through the real pipeline.

For any sequence of outcomes, a request that starts a task is sent again only
after an outcome that proves it was not accepted, a request that may be
repeated is sent again after any failure before a whole answer, and the
total wait never exceeds the policy's cap. The properties drive
``Endpoints.run_workflow`` and ``get_task`` through the pipeline over
``MockTransport`` and over raw sockets (where the transports' own
classification of real failures is what is tested).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rawserver import RawRequest, RawServer

from cyberun._pipeline import (
    ANSWERED,
    BODY_BAD,
    BODY_CUT,
    NO_ANSWER,
    NOT_SENT,
    Attempt,
    Call,
    Retry,
    decide,
)
from cyberun.api import Credentials, Endpoints
from cyberun.errors import (
    APIError,
    BadRequest,
    ConnectError,
    ConnectTimeoutError,
    DecodeError,
    RateLimited,
    ReadError,
    ReadTimeoutError,
    RequestCancelled,
    ServerError,
    SubmissionUncertain,
    TLSError,
    TooManyRedirects,
)
from cyberun.retry import RetryPolicy
from cyberun.transports import MockTransport, Request, Response, Timeout, transport_by_name

TASK = "019abc12-9012-7890-abcd-ef1234567896"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
RUN = Call(method="POST", url="https://h/run", may_repeat=False, submission="text-to-image")
GET = Call(method="GET", url="https://h/t", may_repeat=True)
WEBHOOK = Call(method="POST", url="https://h/webhooks", may_repeat=False)
POLICY = RetryPolicy(random=lambda: 0.5)


def tls_certificate_error() -> TLSError:
    error = TLSError("certificate verify failed")
    error.__cause__ = ssl.SSLCertVerificationError("self-signed certificate")
    return error


def attempt(
    stage: str, error: Any, status: Optional[int] = None, retry_after: Any = None
) -> Attempt:
    return Attempt(stage, error, NOW, status, retry_after)


def answered(status: int, retry_after: Optional[float] = None) -> Attempt:
    cls = {400: BadRequest, 429: RateLimited}.get(
        status, ServerError if status >= 500 else APIError
    )
    return attempt(ANSWERED, cls(f"HTTP {status}", status=status), status, retry_after)


# --- the table -------------------------------------------------------------------------------

REFUSED = [
    attempt(NOT_SENT, ConnectError("refused")),
    attempt(NOT_SENT, ConnectTimeoutError("no SYN-ACK")),
    attempt(NOT_SENT, TLSError("handshake reset")),
    answered(429, 2.0),
    answered(429),
    answered(503, 1.0),
]
MAYBE_ACCEPTED = [
    attempt(NO_ANSWER, ReadError("reset after sending")),
    attempt(NO_ANSWER, ReadTimeoutError("silent")),
    attempt(NO_ANSWER, RequestCancelled("cancelled after sending")),
    attempt(BODY_CUT, ReadError("202 cut short"), 202),
    attempt(BODY_CUT, ReadTimeoutError("202 stalled"), 202),
    attempt(BODY_BAD, DecodeError("202 not JSON"), 202),
    answered(500),
    answered(502),
    answered(504),
]


@pytest.mark.parametrize("outcome", REFUSED, ids=lambda a: f"{a.stage}-{a.status or a.error}")
def test_a_submission_refused_is_retried_and_then_raises_the_precise_error(
    outcome: Attempt,
) -> None:
    assert isinstance(decide(RUN, outcome, [], POLICY), Retry)
    history = [outcome] * (POLICY.attempts - 1)
    assert decide(RUN, outcome, history, POLICY) is outcome.error


@pytest.mark.parametrize(
    "outcome", MAYBE_ACCEPTED, ids=lambda a: f"{a.stage}-{a.status or a.error}"
)
def test_a_submission_that_may_have_been_accepted_is_uncertain_and_never_retried(
    outcome: Attempt,
) -> None:
    decision = decide(RUN, outcome, [], POLICY)
    assert isinstance(decision, SubmissionUncertain)
    assert decision.workflow == "text-to-image" and decision.submitted_at == NOW
    assert decision.__cause__ is outcome.error
    assert "find_submitted" in str(decision)


@pytest.mark.parametrize(
    "outcome",
    [answered(503), answered(400), answered(404), attempt(NOT_SENT, tls_certificate_error())],
)
def test_a_submission_refused_for_good_raises_at_once(outcome: Attempt) -> None:
    assert decide(RUN, outcome, [], POLICY) is outcome.error


@pytest.mark.parametrize(
    ("outcome", "retried"),
    [
        *[(a, True) for a in REFUSED],
        (attempt(NO_ANSWER, ReadError("reset")), True),
        (attempt(NO_ANSWER, ReadTimeoutError("silent")), True),
        (attempt(BODY_CUT, ReadError("cut"), 200), True),
        (answered(502), True),
        (answered(503), True),
        (answered(504), True),
        (answered(500), False),
        (answered(404), False),
        (attempt(BODY_BAD, DecodeError("not JSON"), 200), False),
        (attempt(NO_ANSWER, RequestCancelled("cancelled")), False),
        (attempt(ANSWERED, TooManyRedirects("loop")), False),
        (attempt(NOT_SENT, tls_certificate_error()), False),
    ],
)
def test_a_get_is_retried_after_any_failure_before_a_whole_body(
    outcome: Attempt, retried: bool
) -> None:
    decision = decide(GET, outcome, [], POLICY)
    assert isinstance(decision, Retry) is retried
    if not retried:
        assert decision is outcome.error


def test_another_post_that_may_have_been_accepted_raises_its_own_error() -> None:
    for outcome in MAYBE_ACCEPTED:
        assert decide(WEBHOOK, outcome, [], POLICY) is outcome.error
    assert isinstance(decide(WEBHOOK, REFUSED[0], [], POLICY), Retry)


def test_the_wait_honours_retry_after_the_total_cap_and_the_deadline() -> None:
    policy = RetryPolicy(random=lambda: 0.5, total_wait_max=10.0)
    slow = answered(429, 6.0)
    assert decide(RUN, slow, [], policy) == Retry(6.0)
    waited = [attrs_evolve(slow, 6.0)]
    assert decide(RUN, slow, waited, policy) is slow.error  # 6 + 6 > 10
    assert decide(GET, slow, [], policy, time_left=5.0) is slow.error  # cannot start in time
    assert decide(GET, slow, [], policy, time_left=7.0) == Retry(6.0)
    assert decide(GET, attempt(NO_ANSWER, ReadError("x")), [], policy) == Retry(0.25)


def test_a_body_that_cannot_be_replayed_is_never_sent_twice() -> None:
    call = Call(method="PUT", url="https://s/o", may_repeat=True, replayable=False)
    outcome = attempt(NOT_SENT, ConnectError("refused"))
    assert decide(call, outcome, [], POLICY) is outcome.error


def attrs_evolve(outcome: Attempt, delay: float) -> Attempt:
    import attrs

    return attrs.evolve(outcome, delay=delay)


# --- property: through the real pipeline over MockTransport -----------------------------------

#: Outcomes that prove a request was not accepted, and those that do not.
PROOF = {"refused", "connect-timeout", "tls-handshake", "429", "429-bare", "503-ra"}
FINAL_REFUSAL = {"tls-cert", "503", "400"}
UNCERTAIN = {"reset", "silent", "500", "502", "504", "cut", "stall", "garbage"}
OUTCOMES = sorted(PROOF | FINAL_REFUSAL | UNCERTAIN | {"ok"})
ERRORS: Dict[str, type] = {
    "refused": ConnectError,
    "connect-timeout": ConnectTimeoutError,
    "tls-handshake": TLSError,
    "tls-cert": TLSError,
    "429": RateLimited,
    "429-bare": RateLimited,
    "503-ra": ServerError,
    "503": ServerError,
    "400": BadRequest,
}


def mock_answer(kind: str, ok_body: bytes, retry_after: int) -> Response:
    json_headers = {"Content-Type": "application/json"}

    def failing(after: bytes, error: Exception) -> Iterator[bytes]:
        yield after
        raise error

    if kind == "refused":
        raise ConnectError("connection refused")
    if kind == "connect-timeout":
        raise ConnectTimeoutError("timed out connecting")
    if kind == "tls-handshake":
        raise TLSError("the handshake was reset")
    if kind == "tls-cert":
        raise tls_certificate_error()
    if kind == "reset":
        raise ReadError("connection reset after the request was sent")
    if kind == "silent":
        raise ReadTimeoutError("no answer within the read timeout")
    if kind in ("429", "503-ra"):
        return Response(int(kind[:3]), {"Retry-After": str(retry_after)}, b'{"error": "later"}')
    if kind in ("429-bare", "503", "400", "500", "502", "504"):
        return Response(int(kind[:3]), json_headers, b'{"error": "no"}')
    if kind == "cut":
        return Response(202, json_headers, stream=failing(ok_body[:5], ReadError("cut short")))
    if kind == "stall":
        return Response(
            202, json_headers, stream=failing(ok_body[:5], ReadTimeoutError("stalled"))
        )
    if kind == "garbage":
        return Response(202, {"Content-Type": "text/html"}, b"<html>proxy error</html>")
    return Response(202, json_headers, ok_body)


def endpoints_over(handler: Callable[[Request], Response], policy: RetryPolicy) -> Endpoints:
    return Endpoints(
        base_url="https://api.test",
        credentials=Credentials("sk-test-0123456789"),
        transport=MockTransport(handler),
        timeout=Timeout(1, 1),
        retry=policy,
    )


def check_submission(
    outcomes: List[str],
    sent: int,
    sleeps: List[float],
    policy: RetryPolicy,
    raised: Any,
    retry_after: float,
) -> None:
    used = outcomes[:sent]
    # Resent only after outcomes that prove the request was not accepted ...
    assert all(kind in PROOF for kind in used[:-1]), used
    assert sum(sleeps) <= policy.total_wait_max + 1e-9
    assert sent <= policy.attempts
    last = used[-1]
    if last == "ok":
        assert raised == TASK
    elif last in UNCERTAIN:
        assert isinstance(raised, SubmissionUncertain), (used, raised)
    else:
        assert type(raised) is ERRORS[last], (used, raised)
    # ... and always resent after one while attempts and the wait budget allow.
    if last in PROOF and sent < policy.attempts:
        asked = policy.parse_retry_after(str(retry_after)) if last in ("429", "503-ra") else None
        assert sum(sleeps) + policy.delay(sent, asked) > policy.total_wait_max


def check_get(
    outcomes: List[str], sent: int, sleeps: List[float], policy: RetryPolicy, raised: Any
) -> None:
    used = outcomes[:sent]
    final = {"tls-cert", "400", "500", "garbage", "ok"}
    assert all(kind not in final for kind in used[:-1]), used
    assert sum(sleeps) <= policy.total_wait_max + 1e-9
    assert sent <= policy.attempts
    assert not isinstance(raised, SubmissionUncertain)


def ok_body_for(kind: str) -> bytes:
    if kind == "run":
        return json.dumps({"task_id": TASK}).encode()
    return json.dumps({"id": TASK, "task_status": "running"}).encode()


def call(endpoints: Endpoints, kind: str) -> Any:
    """Start a task or GET one; the result, or the exception raised."""
    try:
        if kind == "run":
            return endpoints.run_workflow("text-to-image", {"parameters": {}})
        return endpoints.get_task(TASK).id
    except Exception as exc:
        return exc


def judge(
    kind: str,
    outcomes: List[str],
    sent: int,
    sleeps: List[float],
    policy: RetryPolicy,
    raised: Any,
    retry_after: float,
) -> None:
    padded = outcomes + ["ok"] * 8  # the handlers answer "ok" once the script runs out
    if kind == "run":
        check_submission(padded, sent, sleeps, policy, raised, retry_after)
    else:
        check_get(padded, sent, sleeps, policy, raised)


@settings(max_examples=300)
@given(
    outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=8),
    attempts=st.integers(min_value=1, max_value=6),
    retry_after=st.integers(min_value=0, max_value=90),
    total=st.sampled_from([5.0, 60.0, 300.0]),
    kind=st.sampled_from(["run", "get"]),
)
def test_property_resends_only_what_may_be_resent_over_mock_transport(
    outcomes: List[str], attempts: int, retry_after: int, total: float, kind: str
) -> None:
    sleeps: List[float] = []
    policy = RetryPolicy(
        attempts=attempts, total_wait_max=total, sleep=sleeps.append, random=lambda: 0.5
    )
    sent: List[str] = []
    ok_body = ok_body_for(kind)

    def handler(request: Request) -> Response:
        outcome = outcomes[len(sent)] if len(sent) < len(outcomes) else "ok"
        sent.append(outcome)
        return mock_answer(outcome, ok_body, retry_after)

    raised = call(endpoints_over(handler, policy), kind)
    judge(kind, outcomes, len(sent), sleeps, policy, raised, retry_after)


# --- property: through the real pipeline over raw sockets --------------------------------------

RAW_OUTCOMES = [
    "reset",
    "silent",
    "429",
    "503-ra",
    "503",
    "500",
    "502",
    "504",
    "400",
    "ok",
    "cut",
    "stall",
    "garbage",
]


def raw_answer(conn: socket.socket, kind: str, ok_body: bytes, stop: threading.Event) -> None:
    def head(
        status: int, extra: str = "", length: Optional[int] = None, body: bytes = b""
    ) -> bytes:
        size = len(body) if length is None else length
        return (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
            f"Connection: close\r\n{extra}\r\n"
        ).encode() + body

    if kind == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif kind == "silent":
        stop.wait(5)
    elif kind in ("429", "503-ra"):
        conn.sendall(head(int(kind[:3]), "Retry-After: 1\r\n", body=b'{"error": "later"}'))
    elif kind in ("503", "500", "502", "504", "400"):
        conn.sendall(head(int(kind), body=b'{"error": "no"}'))
    elif kind == "cut":
        conn.sendall(head(202, length=len(ok_body), body=ok_body[:5]))
    elif kind == "stall":
        conn.sendall(head(202, length=len(ok_body), body=ok_body[:5]))
        stop.wait(5)
    elif kind == "garbage":
        conn.sendall(head(202, body=b"<html>a proxy's page</html>"))
    else:
        conn.sendall(head(202, body=ok_body))


@pytest.mark.parametrize("transport_name", ["urllib", "urllib3", "requests"])
@settings(max_examples=12, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(RAW_OUTCOMES), min_size=1, max_size=5),
    kind=st.sampled_from(["run", "get"]),
)
def test_property_resends_only_what_may_be_resent_over_raw_sockets(
    transport_name: str, outcomes: List[str], kind: str
) -> None:
    if transport_name != "urllib":
        pytest.importorskip(transport_name)
    sleeps: List[float] = []
    policy = RetryPolicy(attempts=4, sleep=sleeps.append, random=lambda: 0.5)
    stop = threading.Event()
    sent: List[str] = []
    ok_body = ok_body_for(kind)

    def script(conn: socket.socket, request: RawRequest) -> None:
        outcome = outcomes[len(sent)] if len(sent) < len(outcomes) else "ok"
        sent.append(outcome)
        raw_answer(conn, outcome, ok_body, stop)

    transport = transport_by_name(transport_name)
    try:
        with RawServer(script) as server:
            endpoints = Endpoints(
                base_url=server.url,
                credentials=Credentials("sk-test-0123456789"),
                transport=transport,
                timeout=Timeout(2, 0.2),
                retry=policy,
            )
            raised = call(endpoints, kind)
            stop.set()
    finally:
        transport.close()
    judge(kind, outcomes, len(sent), sleeps, policy, raised, 1)
