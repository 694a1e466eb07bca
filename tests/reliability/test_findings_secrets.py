"""Issue 19, credentials and secrets: each finding, on every transport, against loopback servers.

The API runs on 127.0.0.1; "another host" (storage, a redirect target, a
proxy) on 127.0.0.2. The credential (a JWT with its team id, so both
``Authorization`` and ``X-Team-ID`` travel) may reach the API's origin only.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from netfixtures import ForwardProxy
from recorder import TASK, Recorder, Seen, ok_json, task_json

import cyberun
from cyberun.models import UploadTarget
from cyberun.testing import CyberunEmulator

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLXNlY3JldA"
TEAM = "019abc12-4567-7890-abcd-ef1234567891"
OTHER = "127.0.0.2"
SIGNATURE = re.compile(r"X-Amz-Signature=([0-9a-f]{8,})")


@pytest.fixture
def other() -> Iterator[Recorder]:
    with Recorder(host=OTHER) as server:
        yield server


def client_for(url: str, transport: object, **options: object) -> cyberun.Client:
    settings: Dict[str, object] = {
        "retry": cyberun.RetryPolicy(backoff=0.0),
        "timeout": cyberun.Timeout(5, 5),
    }
    settings.update(options)
    return cyberun.Client(
        JWT,
        team_id=TEAM,
        base_url=url,
        transport=transport,  # type: ignore[arg-type]
        **settings,  # type: ignore[arg-type]
    )


def credential_carriers(server: Recorder) -> List[Seen]:
    return [s for s in server.seen if "authorization" in s.headers or "x-team-id" in s.headers]


# --- a redirect that parsers read two ways -----------------------------------------------------

HOSTILE_LOCATIONS = [
    # The finding: urlsplit reads host 127.0.0.1 here, urllib3 127.0.0.2.
    "http://{other}:{o}\\@127.0.0.1:{a}/x",
    "http://127.0.0.1:{a}@{other}:{o}/x",  # user info
    "http://{other}:{o}%2F@127.0.0.1:{a}/x",
    "http:\\\\{other}:{o}/x",
    "/\\{other}:{o}/x",  # a browser reads //127.0.0.2
    "http://{other}:{o}/x\\y",
    "http://127.0.0.1:{a}\t@{other}:{o}/x",
    "http://[::1/x",  # a malformed IPv6 host
    "http://127.0.0.1:99999/x",  # a port out of range
    "http://a\u2100b.example/x",  # NFKC turns the host into "aa/cb.example"
]
FOLLOWED_LOCATIONS = [
    "http://{other}:{o}/x",  # another host: followed, without the credential
    "//{other}:{o}/x",
    "HTTP://{other}:{o}/x",
    "http://127.0.0.1:{o}/x",  # the API's host on another port is another origin
]


def redirecting_api(location: str) -> Recorder:
    api = Recorder()
    api.answer = lambda seen: (
        (302, {"Location": location}, b"") if seen.path.endswith(TASK) else ok_json(task_json())
    )
    return api


@pytest.mark.parametrize("template", HOSTILE_LOCATIONS)
def test_a_redirect_parsers_read_two_ways_is_refused_and_no_credential_leaves(
    transport: str, other: Recorder, template: str
) -> None:
    with Recorder() as api:
        location = template.format(other=OTHER, o=other.port, a=api.port)
        api.answer = lambda seen: (302, {"Location": location}, b"")
        with client_for(api.url, transport) as client, pytest.raises(
            cyberun.TooManyRedirects, match="will not follow"
        ):
            client.get_task(TASK)
        assert len(credential_carriers(api)) == 1  # the API itself did get the credential
        assert other.seen == []  # nothing at all went to the other host


@pytest.mark.parametrize("template", FOLLOWED_LOCATIONS)
def test_a_redirect_to_another_origin_is_followed_without_the_credential(
    transport: str, other: Recorder, template: str
) -> None:
    with Recorder() as api, Recorder() as same_host_other_port:
        port = same_host_other_port.port if "127.0.0.1:{o}" in template else other.port
        target = same_host_other_port if "127.0.0.1:{o}" in template else other
        location = template.format(other=OTHER, o=port)
        api.answer = lambda seen: (302, {"Location": location}, b"")
        with client_for(api.url, transport) as client:
            assert client.get_task(TASK).id == TASK
        assert [s.path for s in target.seen] == ["/x"]
        assert credential_carriers(target) == []


def test_trust_lost_on_a_redirect_is_not_regained_on_the_way_back(
    transport: str, other: Recorder
) -> None:
    with Recorder() as api:

        def answer(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
            if seen.path.endswith("/back"):
                return ok_json(task_json())
            return 302, {"Location": f"http://{OTHER}:{other.port}/bounce"}, b""

        api.answer = answer
        other.answer = lambda seen: (302, {"Location": f"{api.url}/back"}, b"")
        with client_for(api.url, transport) as client:
            client.get_task(TASK)
        back = [s for s in api.seen if s.path.endswith("/back")]
        assert len(back) == 1 and "authorization" not in back[0].headers
        assert credential_carriers(other) == []


# --- loopback and proxies ------------------------------------------------------------------------


def _clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_loopback_is_never_proxied_from_the_environment(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ForwardProxy({})
    try:
        _clear_proxy_environment(monkeypatch)
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        with Recorder() as api, client_for(api.url, transport) as client:
            assert client.get_task(TASK).id == TASK
            assert len(credential_carriers(api)) == 1
        assert proxy.seen == []  # the key never passed through the proxy in clear
    finally:
        proxy.close()


def test_loopback_is_never_proxied_through_a_users_session_or_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = pytest.importorskip("requests")
    urllib3 = pytest.importorskip("urllib3")
    proxy = ForwardProxy({})
    try:
        _clear_proxy_environment(monkeypatch)
        session = requests.Session()
        session.proxies = {"http": proxy.url, "https": proxy.url}  # as in the transports guide
        pool = urllib3.ProxyManager(proxy.url)
        for made in (cyberun.RequestsTransport(session), cyberun.Urllib3Transport(pool)):
            with Recorder() as api, client_for(api.url, made) as client:
                assert client.get_task(TASK).id == TASK
                assert len(api.seen) == 1
        assert proxy.seen == []
        session.close()
        pool.clear()
    finally:
        proxy.close()


def test_https_through_an_http_proxy_uses_connect_only(
    transport: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trustme = pytest.importorskip("trustme")
    from netfixtures import TLSServer

    ca = trustme.CA()
    tls = TLSServer(ca)
    proxy = ForwardProxy({"service.test": ("127.0.0.1", tls.port)})
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        _clear_proxy_environment(monkeypatch)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        made: object = {
            "urllib": lambda: cyberun.UrllibTransport(verify=str(bundle)),
            "urllib3": lambda: cyberun.Urllib3Transport(verify=str(bundle)),
            "requests": lambda: cyberun.RequestsTransport(),
        }[transport]()
        from cyberun.transports import Request, Timeout

        response = made.send(  # type: ignore[attr-defined]
            Request("GET", f"https://service.test:{tls.port}/x", {"Authorization": "Bearer k"}),
            timeout=Timeout(5, 5),
        )
        assert response.read() == b'{"secure": true}'
        made.close()  # type: ignore[attr-defined]
        assert [seen["method"] for seen in proxy.seen] == ["CONNECT"]
        assert all("authorization" not in {k.lower() for k in s["headers"]} for s in proxy.seen)
    finally:
        proxy.close()
        tls.close()


# --- storage requests carry a fixed allow-list ---------------------------------------------

TRANSPORT_LEVEL = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
STORAGE_ALLOWED = {
    "user-agent",
    "accept",
    "accept-encoding",
    "range",
    "if-range",
} | TRANSPORT_LEVEL


def test_storage_requests_carry_only_the_allow_list_and_the_signed_headers(
    transport: str, other: Recorder
) -> None:
    other.answer = lambda seen: (200, {"Content-Type": "application/octet-stream"}, b"bytes")
    with Recorder() as api, client_for(api.url, transport) as client:
        url = f"http://{OTHER}:{other.port}/bucket/out.png?X-Amz-Signature=abc123"
        with client.api.open_download(url, headers={"Range": "bytes=0-", "X-Sneaky": "1"}) as r:
            assert r.read() == b"bytes"
        signed = {"Content-Length": "5", "If-None-Match": "*", "x-amz-meta-origin": "sdk"}
        client.api.upload(UploadTarget("inputs/a", url, signed), b"12345", size=5)
    download, upload = other.seen
    assert set(download.headers) <= STORAGE_ALLOWED, download.headers
    assert download.headers["range"] == "bytes=0-" and download.target.endswith("abc123")
    assert set(upload.headers) <= STORAGE_ALLOWED | {"if-none-match", "x-amz-meta-origin"}
    assert upload.headers["if-none-match"] == "*" and upload.body == b"12345"
    assert credential_carriers(other) == []


def test_a_users_session_defaults_never_reach_storage(other: Recorder) -> None:
    requests = pytest.importorskip("requests")
    other.answer = lambda seen: (200, {}, b"bytes")
    session = requests.Session()
    session.headers["X-Corp-Token"] = "corp-gateway-secret"
    session.params = {"corp": "1"}
    session.cookies.set("gateway", "cookie-secret")
    with Recorder() as api:
        with client_for(api.url, cyberun.RequestsTransport(session)) as client:
            client.get_task(TASK)
            url = f"http://{OTHER}:{other.port}/o?X-Amz-Signature=abc123"
            client.api.open_download(url).read()
            client.api.upload(UploadTarget("k", url, {"Content-Length": "1"}), b"x", size=1)
        assert api.seen[0].headers["x-corp-token"] == "corp-gateway-secret"  # the API: kept
    for seen in other.seen:
        assert "x-corp-token" not in seen.headers and "cookie" not in seen.headers
        assert "corp=1" not in seen.target
    session.close()


# --- redaction -------------------------------------------------------------------------------


def test_a_token_the_server_echoes_never_reaches_str_of_the_error(transport: str) -> None:
    token = "opaque-token-4f9a8b7c6d5e9f00"  # neither sk-, dk- nor a JWT

    def echo(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        if seen.path.endswith("/result"):
            return 200, {"Content-Type": "text/html"}, f"<p>hello {token}</p>".encode()
        message = f"invalid credential {seen.headers.get('authorization', '')}"
        return 401, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()

    with Recorder(echo) as api:
        client = cyberun.Client(token, base_url=api.url, transport=transport)
        with pytest.raises(cyberun.AuthenticationError) as info:
            client.get_task(TASK)
        with pytest.raises(cyberun.DecodeError) as decode:
            client.get_result(TASK)
        client.close()
    for error in (info.value, decode.value):
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        assert token not in text and token not in repr(vars(error))
    assert "invalid credential" in str(info.value)


@pytest.mark.parametrize("failure", ["refused", "reset", "timeout"])
def test_a_chained_exception_never_carries_a_signed_url(transport: str, failure: str) -> None:
    # requests quotes the whole URL, signature included, in the MaxRetryError it
    # wraps (refused, timed out) and keeps the request (with its headers).
    import socket

    from rawserver import Blackhole, RawServer

    signature = "5d41402abc4b2a76b9719d911017c592"
    if failure == "refused":
        with socket.socket() as probe:
            probe.bind((OTHER, 0))
            port = probe.getsockname()[1]
        holder: object = None
    elif failure == "timeout":
        holder = Blackhole(OTHER)
        port = holder.port  # type: ignore[attr-defined]
    else:
        holder = RawServer(lambda conn, request: None, host=OTHER)  # reads, then closes
        port = holder.port  # type: ignore[attr-defined]
    url = f"http://{OTHER}:{port}/bucket/out.png?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature={signature}"
    try:
        with Recorder() as api:
            client = client_for(api.url, transport, timeout=cyberun.Timeout(0.3, 2), retry=False)
            with pytest.raises(cyberun.TransportError) as info:
                client.api.open_download(url).read()
            client.close()
    finally:
        if holder is not None:
            holder.close()  # type: ignore[attr-defined]
    error = info.value
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert signature not in text and "AKIA" not in text, text
    cause = error.__cause__
    while cause is not None:  # nor in the attributes of the chained exceptions
        assert signature not in repr(vars(cause)), vars(cause)
        cause = cause.__cause__ or cause.__context__


def test_debug_output_never_shows_a_signature_or_the_key(tmp_path: Path) -> None:
    """``cyberun --debug``: every record and traceback on stderr, with a download's signed URL."""
    pytest.importorskip("urllib3")
    with CyberunEmulator(time_scale=0.01) as server:
        env = dict(os.environ, CYBERUN_API_KEY=server.api_key, CYBERUN_BASE_URL=server.base_url)
        command = [sys.executable, "-m", "cyberun", "run", "text-to-image", "-p", "prompt=x"]
        command += ["--wait", "--download", str(tmp_path), "--debug", "--transport", "urllib3"]
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        urls = [r.path for r in server.storage_requests if r.route == "download"]
    assert finished.returncode == 0, finished.stderr
    assert " DEBUG " in finished.stderr  # debug records were on
    assert urls  # the presigned URL was fetched
    assert not SIGNATURE.search(finished.stderr), finished.stderr[-2000:]
    assert server.api_key not in finished.stderr


def test_the_redacting_filter_cleans_records_and_tracebacks() -> None:
    from cyberun._redact import RedactingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets=["opaque-secret-value"]))
    logger = logging.getLogger("urllib3.test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            '%s "GET %s HTTP/1.1" 200', "http://s3:80", "/o?X-Amz-Signature=deadbeef1234"
        )
        try:
            raise ValueError("failed with Bearer opaque-secret-value at /o?sig=cafe")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "deadbeef1234" not in text and "opaque-secret-value" not in text and "cafe" not in text
    assert "GET /o?[redacted]" in text and "ValueError" in text
