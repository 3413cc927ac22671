"""The browser UI: `index.html` at `/`, its modules, style and icon under `/ui/` (the icon
also as `/favicon.ico`).

The UI is static files shipped in the package (`src/vigil/web/`, no build step); everything it
shows comes from the API, called by the browser with the user's bearer token. The files
themselves need no token: they hold no data, and the page has to load before it can ask for
one. Nothing is loaded from anywhere but Vigil (a recorder box is often offline), which the
page's Content-Security-Policy also enforces.

The `/ui` mount must come after every other route (`create_api` includes this router last):
a mount matches every path below it, and a stream may be called `ui` (`/ui/whep`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_PREFIX = "/ui"
WEB_DIRECTORY = Path(str(files("vigil") / "web"))

# Same origin only: the API (fetch, WebSocket), the UI's files, snapshots and clips as blobs,
# and WebRTC (which CSP does not govern).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The files change with Vigil's version and carry no version in their names: the browser may
# keep them, but must ask (ETag / Last-Modified make that a 304).
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


class _UiFiles(StaticFiles):
    """Starlette's static files with the UI's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


@router.get("/")
async def index() -> FileResponse:
    """The UI's single page (its views are `#/` and `#/stream/<name>`)."""
    return FileResponse(
        WEB_DIRECTORY / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it on every page without an icon of its own (/docs, a JSON answer
    opened in a tab): the UI's icon rather than a 404 in their console."""
    return FileResponse(WEB_DIRECTORY / "icon.svg", media_type="image/svg+xml", headers=HEADERS)


def mount_ui(app: FastAPI) -> None:
    """Add the `/` page and the `/ui/` files; call after every other route is added."""
    app.include_router(router)
    app.mount(ASSETS_PREFIX, _UiFiles(directory=WEB_DIRECTORY), name="ui")
