"""The command-line client's connection to a running Vigil: where it is, the token, and what
each kind of failure tells the user (`vigil streams`, `vigil recordings`, `vigil export`).

The URL and token come from ``--url`` / ``--token`` or ``VIGILCTL_URL`` / ``VIGILCTL_TOKEN``.
Not ``VIGIL_*``: every ``VIGIL_*`` variable is a configuration override (config/env.py) and an
unknown one stops `vigil run`, so a shell exporting the client's settings could not run Vigil.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from vigil.commands.choices import STREAM_NAME_PATTERN
from vigil.commands.output import escape, stderr

if TYPE_CHECKING:
    # Imported where a request is made: building the command line must stay cheap (cli.py).
    import httpx

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


class Remote:
    """Requests to one Vigil's REST API (paths below ``/api/v1``); every failure is raised as
    a `RemoteError`. The token is sent as a bearer header and never appears in a message."""

    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT_S) -> None:
        import httpx

        base = _parse_url(url)
        self.url = str(base.copy_with(username=None, password=None)).rstrip("/")
        token = (token or "").strip()
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base_url = base.copy_with(path=base.path.rstrip("/") + API_PREFIX)
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

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
    ) -> httpx.Response:
        """Send a request; a non-2xx answer raises `RemoteError` with Vigil's message."""
        with self._transport_errors():
            response = self._client.request(method, path, params=params, json=body)
        if response.is_error:
            raise self._refused(response)
        return response

    @contextmanager
    def stream(
        self, path: str, *, params: Mapping[str, str] | None = None, timeout: httpx.Timeout
    ) -> Iterator[httpx.Response]:
        """GET whose body is read as it arrives (downloads). A refusal is raised before the
        body; a connection lost while reading it is raised as a `RemoteError` too."""
        with (
            self._transport_errors(),
            self._client.stream("GET", path, params=params, timeout=timeout) as response,
        ):
            if response.is_error:
                response.read()
                raise self._refused(response)
            yield response

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        import httpx

        where = f"Vigil at {self.url}"
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise RemoteError(
                f"cannot reach {where}: {_reason(error)} (is it running? --url or "
                f"{URL_VARIABLE} says where it is)"
            ) from None
        except httpx.TimeoutException:
            raise RemoteError(f"{where} did not answer in time") from None
        except httpx.TransportError as error:
            raise RemoteError(f"the connection to {where} failed: {_reason(error)}") from None

    def _refused(self, response: httpx.Response) -> RemoteError:
        message = refusal_message(
            response.status_code, response.content, url=self.url, has_token=self._has_token
        )
        return RemoteError(message, EXIT_FAILED, response.status_code)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"the answer of {self.url}{response.url.path} is not JSON: is this Vigil's API?",
                status=response.status_code,
            ) from None


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


def _parse_url(url: str) -> httpx.URL:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise RemoteError("--url must look like http://HOST:PORT (or https://…)", EXIT_USAGE)
    return parsed


def _reason(error: httpx.TransportError) -> str:
    text = str(error)
    return text or type(error).__name__


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
