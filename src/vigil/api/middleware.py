"""ASGI middleware of the API: request durations for Prometheus.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which buffers streaming responses (the
export download) and does not see WebSockets pass. Labels are route templates
(``/api/v1/streams/{name}``), never raw paths: a scanner probing random URLs must not create
a series per URL.
"""

from __future__ import annotations

import functools
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.observability.metrics import HTTP_REQUEST_DURATION

# Anything else is counted as "other": the method is the client's choice, the series are ours.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route (404 for an unknown path, CORS preflight)


class RequestMetrics:
    """Times every HTTP request (to the end of its response) into
    `vigil_http_request_duration_seconds`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            HTTP_REQUEST_DURATION.labels(route, method, str(status)).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The full path template of the route that handled the request, or ``unmatched``.

    The router puts the route in the scope. FastAPI (0.16x) matches a router included with a
    prefix against the rest of the path, so the route's own template may lack that prefix: it
    is then the part of the request path before what the route matched.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str):
        return UNMATCHED
    path = scope.get("path", "")
    if isinstance(pattern, re.Pattern) and not pattern.match(path):
        found = _after_prefix(pattern.pattern).fullmatch(path)
        if found is not None:
            return found.group("vigil_prefix") + template
    return template


@functools.lru_cache(maxsize=256)
def _after_prefix(route_pattern: str) -> re.Pattern[str]:
    """`route_pattern` (anchored) preceded by the shortest prefix that lets it match."""
    return re.compile("(?P<vigil_prefix>.*?)" + route_pattern.removeprefix("^"))
