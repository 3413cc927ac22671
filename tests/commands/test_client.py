"""The API client's own HTTP (the standard library's `http.client`): what it sends, how it keeps
and renews its connection, proxies from the environment, and failures named for the user.
Against a small local HTTP server that records what it is sent (the real API's answers are the
subject of the command tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vigil.commands.client import EXIT_USAGE, Remote, RemoteError
from vigil.commands.storage import _vigil_answering
from vigil.config import load_config_text, resolve


@dataclass
class Seen:
    """What the server was sent: each request's line and headers, and its connections."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    close_after_each: bool = False
    closed: int = 0  # connections the server has closed
    healthy_path: str = "/healthz"  # answered 200 when asked, like any path below /api


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.requests.append((self.requestline, dict(self.headers.items())))
            seen.connections.add(self.client_address[:2])
            body = json.dumps({"path": self.path}).encode()
            found = "/api/" in self.path or self.path == seen.healthy_path
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if seen.close_after_each:
                # Closed without "Connection: close": an idle keep-alive dropped by the server.
                self.close_connection = True

        def log_message(self, *_args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def shutdown_request(self, request: object) -> None:
            super().shutdown_request(request)  # type: ignore[arg-type]
            seen.closed += 1

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_sends_the_token_asks_below_the_api_prefix_and_keeps_one_connection(
    server: tuple[str, Seen],
) -> None:
    url, seen = server
    with Remote(url + "/vigil/", "secret") as remote:
        assert remote.url == url + "/vigil"
        assert remote.get("/streams", {"q": "a b"}) == {"path": "/vigil/api/v1/streams?q=a+b"}
        assert remote.get("/streams") == {"path": "/vigil/api/v1/streams"}
    assert [line for line, _ in seen.requests] == [
        "GET /vigil/api/v1/streams?q=a+b HTTP/1.1",
        "GET /vigil/api/v1/streams HTTP/1.1",
    ]
    assert all(headers["Authorization"] == "Bearer secret" for _, headers in seen.requests)
    assert len(seen.connections) == 1


def test_a_connection_the_server_closed_is_replaced(server: tuple[str, Seen]) -> None:
    url, seen = server
    seen.close_after_each = True
    with Remote(url, None) as remote:
        for _ in range(3):
            assert remote.get("/streams") == {"path": "/api/v1/streams"}
            _until(lambda: seen.closed == len(seen.requests))  # dropped while idle
    assert len(seen.connections) == 3
    assert all("Authorization" not in headers for _, headers in seen.requests)


def test_user_and_password_in_the_url_are_sent_as_basic_and_never_shown(
    server: tuple[str, Seen],
) -> None:
    url, seen = server
    with Remote(url.replace("://", "://ann:p%40ss@"), None) as remote:
        assert remote.url == url
        remote.get("/streams")
    assert seen.requests[0][1]["Authorization"] == "Basic YW5uOnBAc3M="  # ann:p@ss


def test_a_proxy_named_by_the_environment_carries_the_request_unless_no_proxy_says_not(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = server
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with Remote("http://vigil.invalid:8080", None) as remote:
        remote.get("/streams")
    assert seen.requests[0][0] == "GET http://vigil.invalid:8080/api/v1/streams HTTP/1.1"
    monkeypatch.setenv("NO_PROXY", "vigil.invalid")
    with pytest.raises(RemoteError, match=r"^cannot reach Vigil at http://vigil.invalid:8080: "):
        Remote("http://vigil.invalid:8080", None).get("/streams")


def test_an_answer_that_does_not_come_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Remote(url, None, timeout=0.2) as remote, pytest.raises(RemoteError) as raised:
            remote.get("/streams")
    assert raised.value.message == f"Vigil at {url} did not answer in time"
    assert raised.value.ends_the_command


@pytest.mark.parametrize("url", ["ftp://host", "http://", "http://host:99999", "http://[::1"])
def test_a_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    with pytest.raises(RemoteError, match="must look like http://HOST:PORT") as raised:
        Remote(url, None)
    assert raised.value.exit_code == EXIT_USAGE


def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize(("path", "answering"), [("/healthz", True), ("/elsewhere", False)])
def test_storage_commands_see_a_vigil_answering_at_the_configured_address(
    server: tuple[str, Seen], tmp_path: Path, path: str, answering: bool
) -> None:
    """`vigil storage reindex` asks the configured API address whether Vigil runs there (a
    200 at /healthz), directly, whatever proxy the environment names."""
    url, seen = server
    port = url.rsplit(":", 1)[1]
    config = load_config_text(f"data_dir: {tmp_path}\napi: {{listen: '0.0.0.0:{port}'}}\n")
    resolved = resolve(config, base_dir=tmp_path)
    seen.healthy_path = path
    assert _vigil_answering(resolved) == (url if answering else None)
    assert seen.requests[0][0] == "GET /healthz HTTP/1.1"
