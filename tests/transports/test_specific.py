"""What each transport does of its own: the user's session or pool, proxies, TLS."""

from __future__ import annotations

import json
import os
from typing import Iterator

import pytest
from netfixtures import ForwardProxy, TLSServer
from scripted import ScriptedServer

from cyberun.errors import ConnectError, TLSError
from cyberun.transports import Request, Timeout, UrllibTransport

TIMEOUT = Timeout(5, 5)
trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def ca() -> object:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls(ca: object) -> Iterator[TLSServer]:
    s = TLSServer(ca)
    yield s
    s.close()


@pytest.fixture
def ca_file(ca: object, tmp_path: object) -> str:
    path = os.path.join(str(tmp_path), "ca.pem")
    ca.cert_pem.write_to_path(path)  # type: ignore[attr-defined]
    return path


@pytest.fixture
def proxy(server: ScriptedServer, tls: TLSServer) -> Iterator[ForwardProxy]:
    host, port = server.url.split("//")[1].split(":")
    p = ForwardProxy({"service.test": (host, int(port)), "secure.test": ("127.0.0.1", tls.port)})
    yield p
    p.close()


def _send(transport: object, url: str) -> bytes:
    return transport.send(Request("GET", url), timeout=TIMEOUT).read()  # type: ignore[attr-defined,no-any-return]


# --- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["urllib", "urllib3"])
def test_tls_is_verified_by_default(name: str, tls: TLSServer) -> None:
    from cyberun.transports import transport_by_name

    if name == "urllib3":
        pytest.importorskip("urllib3")
    with transport_by_name(name) as transport, pytest.raises(TLSError, match="TLS"):
        _send(transport, tls.url + "/")


def test_tls_with_a_custom_ca_bundle(tls: TLSServer, ca_file: str) -> None:
    with UrllibTransport(verify=ca_file) as transport:
        assert json.loads(_send(transport, tls.url + "/")) == {"secure": True}
    urllib3_transport = pytest.importorskip("cyberun.transports.urllib3")
    pytest.importorskip("urllib3")
    with urllib3_transport.Urllib3Transport(verify=ca_file) as transport:
        assert json.loads(_send(transport, tls.url + "/")) == {"secure": True}


def test_tls_verification_can_be_turned_off_explicitly(tls: TLSServer) -> None:
    with UrllibTransport(verify=False) as transport:
        assert json.loads(_send(transport, tls.url + "/")) == {"secure": True}


def test_requests_session_ca_bundle_is_honoured(tls: TLSServer, ca_file: str) -> None:
    requests = pytest.importorskip("requests")
    from cyberun.transports import RequestsTransport

    with requests.Session() as session, pytest.raises(TLSError):
        _send(RequestsTransport(session), tls.url + "/")
    with requests.Session() as session:
        session.verify = ca_file
        assert json.loads(_send(RequestsTransport(session), tls.url + "/")) == {"secure": True}


# --- proxies --------------------------------------------------------------------------------


def test_urllib_honours_proxy_environment_variables(
    proxy: ForwardProxy, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://user:p%40ss@"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with UrllibTransport(verify=ca_file) as transport:
        assert json.loads(_send(transport, "http://service.test/json")) == {"ok": True}
        assert proxy.seen[-1]["target"] == "http://service.test/json"
        assert json.loads(_send(transport, "https://secure.test/")) == {"secure": True}
    connect = proxy.seen[-1]
    assert connect["method"] == "CONNECT" and connect["target"] == "secure.test:443"
    assert connect["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_no_proxy_and_loopback_skip_the_proxy(
    proxy: ForwardProxy, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "service.test")
    with UrllibTransport() as transport:
        with pytest.raises(ConnectError):
            _send(transport, "http://service.test/json")  # direct, and there is no such host
        assert json.loads(_send(transport, server.url + "/json")) == {"ok": True}  # loopback
    assert proxy.seen == []


def test_explicit_proxies_and_trust_env(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    with UrllibTransport(proxies={"http": proxy.url}) as transport:
        assert json.loads(_send(transport, "http://service.test/json")) == {"ok": True}
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with UrllibTransport(trust_env=False) as transport, pytest.raises(ConnectError):
        _send(transport, "http://service.test/json")


def test_urllib3_honours_proxy_environment_variables(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("urllib3")
    from cyberun.transports import Urllib3Transport

    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Urllib3Transport() as transport:
        assert json.loads(_send(transport, "http://service.test/json")) == {"ok": True}
    assert proxy.seen[-1]["target"] == "http://service.test/json"


def test_a_users_requests_session_proxies_are_honoured(proxy: ForwardProxy) -> None:
    requests = pytest.importorskip("requests")
    from cyberun.transports import RequestsTransport

    with requests.Session() as session:
        session.trust_env = False
        session.proxies = {"http": proxy.url}
        assert json.loads(_send(RequestsTransport(session), "http://service.test/json")) == {
            "ok": True
        }
    assert proxy.seen[-1]["target"] == "http://service.test/json"


def test_a_users_urllib3_proxy_manager_is_used(proxy: ForwardProxy) -> None:
    urllib3 = pytest.importorskip("urllib3")
    from cyberun.transports import Urllib3Transport

    manager = urllib3.ProxyManager(proxy.url)
    transport = Urllib3Transport(manager)
    assert json.loads(_send(transport, "http://service.test/json")) == {"ok": True}
    transport.close()
    assert proxy.seen[-1]["target"] == "http://service.test/json"
    manager.clear()


# --- ownership and safety of the user's objects ------------------------------------------------


def test_requests_transport_closes_only_what_it_created(server: ScriptedServer) -> None:
    requests = pytest.importorskip("requests")
    from cyberun.transports import RequestsTransport

    session = requests.Session()
    closed = []
    session.close = lambda: closed.append("user")  # type: ignore[method-assign]
    RequestsTransport(session).close()
    assert closed == []
    own = RequestsTransport()
    own.session.close = lambda: closed.append("own")  # type: ignore[method-assign]
    own.close()
    assert closed == ["own"]


def test_urllib3_transport_closes_only_what_it_created() -> None:
    urllib3 = pytest.importorskip("urllib3")
    from cyberun.transports import Urllib3Transport

    pool = urllib3.PoolManager()
    cleared = []
    pool.clear = lambda: cleared.append("user")  # type: ignore[method-assign]
    Urllib3Transport(pool).close()
    assert cleared == []


def test_session_auth_and_default_credential_headers_are_never_applied(
    server: ScriptedServer,
) -> None:
    requests = pytest.importorskip("requests")
    from cyberun.transports import RequestsTransport

    with requests.Session() as session:
        session.auth = ("someone", "their-password")
        session.headers["Authorization"] = "Bearer their-own-token"
        session.headers["X-Team-ID"] = "their-team"
        session.headers["X-Kept"] = "yes"
        transport = RequestsTransport(session)
        echo = json.loads(_send(transport, server.url + "/echo"))
        assert "authorization" not in echo["headers"] and "x-team-id" not in echo["headers"]
        assert "x-kept" not in echo["headers"]  # session defaults travel only with the credential
        ours = transport.send(
            Request("GET", server.url + "/echo", {"Authorization": "Bearer ours"}), timeout=TIMEOUT
        )
        headers = json.loads(ours.read())["headers"]
        assert headers["authorization"] == "Bearer ours" and headers["x-kept"] == "yes"
        assert "x-team-id" not in headers


def test_a_users_mounted_adapter_keeps_working() -> None:
    requests = pytest.importorskip("requests")
    responses = pytest.importorskip("responses")
    from cyberun.transports import RequestsTransport

    with responses.RequestsMock() as mocked, requests.Session() as session:
        mocked.add(
            responses.GET,
            "https://api.example.test/ping",
            json={"pong": True},
            headers={"X-Request-ID": "r1"},
        )
        response = RequestsTransport(session).send(
            Request("GET", "https://api.example.test/ping"), timeout=TIMEOUT
        )
        assert response.status == 200 and response.headers["x-request-id"] == "r1"
        assert json.loads(response.read()) == {"pong": True}


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        ("ConnectTimeout", "ConnectTimeoutError"),
        ("SSLError", "TLSError"),
        ("ConnectionError", "ConnectError"),
        ("InvalidSchema", "ConnectError"),
        ("ChunkedEncodingError", "ReadError"),
    ],
)
def test_bare_errors_from_a_users_adapter_map_to_the_sdk_hierarchy(
    raised: str, expected: str
) -> None:
    """Adapters that raise requests' exceptions without a urllib3 cause (custom
    adapters, mocking libraries) still surface as the SDK's transport errors."""
    requests = pytest.importorskip("requests")
    from cyberun import errors
    from cyberun.transports import RequestsTransport

    class FailingAdapter(requests.adapters.BaseAdapter):  # type: ignore[misc]
        def send(self, request: object, **kwargs: object) -> object:
            raise getattr(requests.exceptions, raised)("the adapter gave up")

        def close(self) -> None:
            pass

    with requests.Session() as session:
        session.mount("https://", FailingAdapter())
        with pytest.raises(errors.TransportError) as caught:
            RequestsTransport(session).send(
                Request("GET", "https://api.example.test/ping?X-Amz-Signature=secret"),
                timeout=TIMEOUT,
            )
    assert type(caught.value).__name__ == expected
    assert caught.value.method == "GET"
    assert "secret" not in str(caught.value)
