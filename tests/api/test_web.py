"""The browser UI's files: served at `/` and `/ui/` without a token, beside (never over) the
API, and shipped in the package. What the page does is tested in a browser: tests/web/."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from tests.api.conftest import CONFIG_TOKEN, Api
from vigil.api.routes.web import WEB_DIRECTORY

IMPORT = re.compile(r"""from\s+"\./([\w-]+\.js)"|import\s+"\./([\w-]+\.js)\"""")
REFERENCE = re.compile(r"""(?:src|href)="(/ui/[^"]+)\"""")


async def test_the_page_and_its_files_need_no_token_but_the_api_still_does(
    secured_api: Api,
) -> None:
    client = secured_api.client
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"

    # Everything the page loads, and every module those import, is there.
    wanted = set(REFERENCE.findall(page.text))
    assert "/ui/app.js" in wanted
    modules = sorted(WEB_DIRECTORY.glob("*.js"))
    for module in modules:
        for names in IMPORT.findall(module.read_text()):
            wanted |= {f"/ui/{name}" for name in names if name}
    for path in sorted(wanted):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == "no-cache", path
        if path.endswith(".js"):  # modules load only with a JavaScript type
            assert answer.headers["content-type"].startswith("text/javascript"), path
    assert {f"/ui/{m.name}" for m in modules} <= wanted, "a module nothing imports"

    etag = (await client.get("/ui/app.js")).headers["etag"]
    assert (await client.get("/ui/app.js", headers={"If-None-Match": etag})).status_code == 304

    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"

    for missing in ("/ui/nothing.js", "/ui/../pyproject.toml", "/ui/%2e%2e/app.py", "/ui/"):
        assert (await client.get(missing)).status_code == 404, missing

    # The page shadows nothing: the API, its documentation and the probes answer as before.
    assert (await client.get("/api/v1/streams")).status_code == 401
    assert (await client.get("/metrics")).status_code == 401
    authorized = {"Authorization": f"Bearer {CONFIG_TOKEN}"}
    assert (await client.get("/api/v1/streams", headers=authorized)).status_code == 200
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Vigil"
    assert "swagger" in (await client.get("/docs")).text.lower()
    assert "/" not in (await client.get("/openapi.json")).json()["paths"]


def test_every_file_of_the_ui_is_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["vigil"]
    files = [p for p in WEB_DIRECTORY.iterdir() if p.is_file()]
    assert files
    for file in files:
        relative = f"web/{file.name}"
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
