"""The command-line client's connection to a running Vigil: where it is, the token, and what
each kind of failure tells the user (`vigil streams`, `vigil recordings`, `vigil export`).

The URL and token come from ``--url`` / ``--token`` or ``VIGILCTL_URL`` / ``VIGILCTL_TOKEN``.
Not ``VIGIL_*``: every ``VIGIL_*`` variable is a configuration override (config/env.py) and an
unknown one stops `vigil run`, so a shell exporting the client's settings could not run Vigil.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from vigil.commands.choices import STREAM_NAME_PATTERN
from vigil.commands.output import escape, stderr

if TYPE_CHECKING:
    # Imported where a request is made: building the command line must stay cheap (cli.py).
    import ssl
    from http.client import HTTPConnection, HTTPMessage, HTTPResponse

URL_VARIABLE = "VIGILCTL_URL"
TOKEN_VARIABLE = "VIGILCTL_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"
API_PREFIX = "/api/v1"
TIMEOUT_S = 10.0
EXIT_FAILED = 1  # Vigil refused the request, or could not be reached
EXIT_USAGE = 2  # the command line is wrong (click's own code for usage errors)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar=URL_VARIABLE, help="Where Vigil's API is.", show_envvar=True),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar=TOKEN_VARIABLE, show_default=False, show_envvar=True,
        help="API token (`vigil tokens create`); needed once Vigil has any token.",
    ),
]  # fmt: skip
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]

_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)


class RemoteError(Exception):
    """A failure to tell the user: the message, the exit code, and the HTTP status if Vigil
    answered (None when it could not be reached or the command line is wrong)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status

    @property
    def ends_the_command(self) -> bool:
        """True when trying the next item of the command would fail the same way (Vigil is
        unreachable, the token is refused, the command line is wrong)."""
        return self.status is None or self.status in (401, 403)


@dataclass(frozen=True, slots=True)
class Target:
    """Where Vigil's API is: scheme, host, port, the path it is mounted under, and the
    user:password the URL may carry (sent as Basic authentication, as a browser would)."""

    scheme: str
    host: str
    port: int
    path: str
    userinfo: str

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}{'' if self.port == default else f':{self.port}'}"

    @property
    def url(self) -> str:
        """The URL to show: without the user:password."""
        return f"{self.origin}{self.path}".rstrip("/")


class Response:
    """One answer: its status, headers, and body, read whole (`content`) or as it arrives
    (`iter_bytes`). Connection failures while reading are raised as `RemoteError`."""

    def __init__(self, raw: HTTPResponse, path: str, where: str) -> None:
        self._raw = raw
        self.status_code: int = raw.status
        self.headers: HTTPMessage = raw.headers
        self.path = path
        self._where = where
        self._content: bytes | None = None

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def content(self) -> bytes:
        """The whole body (read on first use)."""
        return self.read()

    def read(self) -> bytes:
        """Read the whole body (once) and return it."""
        if self._content is None:
            with _transport_errors(self._where):
                self._content = self._raw.read()
        return self._content

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        """The body in pieces of at most `chunk_size` bytes, as they arrive."""
        while True:
            with _transport_errors(self._where):
                chunk = self._raw.read(chunk_size)
            if not chunk:
                return
            yield chunk


class Remote:
    """Requests to one Vigil's REST API (paths below ``/api/v1``); every failure is raised as
    a `RemoteError`. The token is sent as a bearer header and never appears in a message.

    The standard library's `http.client` carries the requests: importing an HTTP client
    library costs more than a short command's whole run. One connection is kept for the
    command's requests. As with httpx before it: TLS verified against ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` or else certifi's bundle, a proxy from ``HTTP(S)_PROXY`` / ``ALL_PROXY``
    unless ``NO_PROXY`` names the host, no redirects followed."""

    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT_S) -> None:
        self._target = _parse_url(url)
        self.url = self._target.url
        token = (token or "").strip()
        self._has_token = bool(token)
        self._headers = {"Accept": "application/json", "User-Agent": "vigil"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        if self._target.userinfo:
            self._headers["Authorization"] = _basic(self._target.userinfo)
        self._timeout = timeout
        self._connection: HTTPConnection | None = None
        self._proxied = False

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """The JSON answer of a GET."""
        return self._json(self.request("GET", path, params=params))

    def post(self, path: str, body: object = None) -> Any:
        """The JSON answer of a POST (None for 204)."""
        return self._json(self.request("POST", path, body=body))

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: object = None,
    ) -> Response:
        """Send a request; a non-2xx answer raises `RemoteError` with Vigil's message."""
        response = self._send(method, path, params=params, body=body)
        response.read()  # whole: the connection may then serve the next request
        if response.is_error:
            raise self._refused(response)
        return response

    @contextmanager
    def stream(
        self, path: str, *, params: Mapping[str, str] | None = None, read_timeout: float
    ) -> Iterator[Response]:
        """GET whose body is read as it arrives (downloads), waiting up to `read_timeout`
        seconds for each piece (and for the answer to begin). A refusal is raised before the
        body; a connection lost while reading it is raised as a `RemoteError` too."""
        try:
            response = self._send("GET", path, params=params, read_timeout=read_timeout)
            if response.is_error:
                raise self._refused(response)
            yield response
        finally:
            self.close()  # the body may be left unread: the connection cannot serve again

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: object = None,
        read_timeout: float | None = None,
    ) -> Response:
        from urllib.parse import urlencode

        full_path = self._target.path.rstrip("/") + API_PREFIX + path
        target = full_path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = self._open()
        if self._proxied:  # a plain-HTTP proxy takes the whole URL
            target = self._target.origin + target
        with _transport_errors(f"Vigil at {self.url}"):
            try:
                connection.request(method, target, body=data, headers=headers)
                if read_timeout is not None and connection.sock is not None:
                    connection.sock.settimeout(read_timeout)
                raw = connection.getresponse()
            except BaseException:
                self.close()
                raise
        return Response(raw, full_path, f"Vigil at {self.url}")

    def _open(self) -> HTTPConnection:
        """The connection to send on: the one kept, unless the server has closed it since
        (an idle keep-alive connection it dropped), or a new one."""
        connection = self._connection
        if connection is not None and (connection.sock is None or _closed(connection)):
            self.close()
            connection = None
        if connection is None:
            connection = self._connect()
            self._connection = connection
        return connection

    def _connect(self) -> HTTPConnection:
        import http.client

        target = self._target
        proxy = _proxy(target)
        host, port = (proxy.host, proxy.port) if proxy else (target.host, target.port)
        connection: HTTPConnection
        if target.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._timeout, context=_ssl_context()
            )
            if proxy is not None:
                headers = {"Proxy-Authorization": _basic(proxy.userinfo)} if proxy.userinfo else {}
                connection.set_tunnel(target.host, target.port, headers)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
            if proxy is not None and proxy.userinfo:
                self._headers["Proxy-Authorization"] = _basic(proxy.userinfo)
        self._proxied = proxy is not None and target.scheme == "http"
        where = f"Vigil at {self.url}"
        try:
            connection.connect()
        except TimeoutError as error:
            raise _unreachable(where, str(error) or "timed out") from None
        except OSError as error:  # refused, no such host, TLS certificate refused…
            raise _unreachable(where, str(error) or type(error).__name__) from None
        return connection

    def _refused(self, response: Response) -> RemoteError:
        message = refusal_message(
            response.status_code, response.content, url=self.url, has_token=self._has_token
        )
        return RemoteError(message, EXIT_FAILED, response.status_code)

    def _json(self, response: Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"the answer of {self.url}{response.path} is not JSON: is this Vigil's API?",
                status=response.status_code,
            ) from None


@contextmanager
def _transport_errors(where: str) -> Iterator[None]:
    """Connection failures once connected (`Remote._connect` reports those before), as
    `RemoteError`s naming `where`."""
    from http.client import HTTPException

    try:
        yield
    except TimeoutError:
        raise RemoteError(f"{where} did not answer in time") from None
    except (OSError, HTTPException) as error:
        reason = str(error) or type(error).__name__
        raise RemoteError(f"the connection to {where} failed: {reason}") from None


def _unreachable(where: str, reason: str) -> RemoteError:
    return RemoteError(
        f"cannot reach {where}: {reason} (is it running? --url or {URL_VARIABLE} says where it is)"
    )


def _closed(connection: HTTPConnection) -> bool:
    """True when the server has closed (or written to) an idle kept connection: reading it
    would fail, so a new one is opened instead (as httpcore does)."""
    import select

    assert connection.sock is not None
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def _ssl_context() -> ssl.SSLContext:
    """Verification as httpx does it by default: ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, or
    certifi's bundle (the system's when certifi is not installed)."""
    import ssl

    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _proxy(target: Target) -> Target | None:
    """The proxy the environment names for `target`, or None (no proxy variable set, or
    ``NO_PROXY`` covers the host)."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None  # the common case, without urllib.request's import
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(target.scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(target.host):
        return None
    proxy = _parse_url(url, what="the proxy URL")
    if proxy.scheme != "http":
        raise RemoteError(f"{proxy.url}: only http:// proxies are supported", EXIT_USAGE)
    return proxy


def _basic(userinfo: str) -> str:
    import base64
    from urllib.parse import unquote

    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return f"Basic {base64.b64encode(pair).decode('ascii')}"


def refusal_message(status: int, body: bytes, *, url: str, has_token: bool) -> str:
    """What to tell the user about an error answer: Vigil's own message, and for 401 / 403
    whether the token is missing, refused or too weak."""
    message = _error_message(body)
    if status == 401:
        if not has_token:
            return (
                f"Vigil at {url} needs a token: pass --token or set {TOKEN_VARIABLE} "
                f"(401: {message or 'unauthorized'})"
            )
        return f"Vigil at {url} refused the token (401: {message or 'unauthorized'})"
    if status == 403:
        return f"the token may not do this (403: {message or 'forbidden'})"
    if message is None:
        return f"HTTP {status} from {url}, not in the form of Vigil's API errors: is this Vigil?"
    return f"{message} ({status})"


def _error_message(body: bytes) -> str | None:
    try:
        error = json.loads(body)["error"]
        message = error["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) else None


def _parse_url(url: str, *, what: str = "--url") -> Target:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port, host = parts.port, parts.hostname  # ValueError: a port not a number, or too big
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https"):
        raise RemoteError(f"{what} must look like http://HOST:PORT (or https://…)", EXIT_USAGE)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, host, port or default, parts.path, userinfo)


def stream_path(name: str, *rest: str) -> str:
    """``/streams/NAME/…`` for a valid stream name; a `RemoteError` (usage) otherwise."""
    if not _STREAM_NAME.match(name):
        raise RemoteError(
            f"{name!r} is not a stream name (letters, digits, '-' and '_'; 64 at most)",
            EXIT_USAGE,
        )
    return "/".join(("/streams", name, *rest))


@contextmanager
def connect(url: str, token: str | None, *, timeout: float = TIMEOUT_S) -> Iterator[Remote]:
    """A `Remote` for one command; a `RemoteError` inside ends the command with its message
    and exit code."""
    try:
        with Remote(url, token, timeout=timeout) as remote:
            yield remote
    except RemoteError as error:
        fail(error)


def fail(error: RemoteError) -> NoReturn:
    """Print the error on stderr and end the command with its exit code."""
    report(error)
    raise typer.Exit(error.exit_code)


def report(error: RemoteError) -> None:
    stderr().print(f"[red]error:[/] {escape(error.message)}")


def print_json(data: object) -> None:
    """JSON on stdout, for scripts."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
