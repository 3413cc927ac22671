"""`vigil streams …` against the API served for real on loopback: what a user sees (tables,
messages, exit codes), tokens and roles, an unreachable Vigil, and the real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.api.conftest import CONFIG_TOKEN, Api
from tests.support.cli import Ran, run_vigil
from tests.support.media import free_port
from vigil.store.tokens import Role


async def _vigil(api: Api, *args: str, token: str | None = None) -> Ran:
    return await run_vigil(*args, url=api.server.url, token=token)


def _rows(table: str) -> dict[str, list[str]]:
    """A rich table's rows by their first cell."""
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) > 1 and cells[0] and cells[0] != "name":
            rows[cells[0]] = cells[1:]
    return rows


async def test_list_shows_each_stream_with_its_state_and_a_masked_source(api: Api) -> None:
    ran = await _vigil(api, "streams", "list")
    assert ran.exit_code == 0, ran.output
    rows = _rows(ran.stdout)
    assert rows["gate"][:6] == ["streaming", "receiving video", "2026-11-24 00:00:00", "on", "2",
                                "file"]  # fmt: skip
    assert rows["gate"][6] == "rtsp://admin:***@192.0.2.10:554/stream1"
    assert rows["yard"][0] == "stalled"
    assert "secret" not in ran.output

    as_json = await _vigil(api, "streams", "list", "--json")
    streams = json.loads(as_json.stdout)
    assert [(s["name"], s["state"]) for s in streams] == [
        ("gate", "streaming"),
        ("yard", "stalled"),
    ]


async def test_add_stop_start_and_remove_a_stream(api: Api) -> None:
    added = await _vigil(
        api, "streams", "add", "porch", "rtsp://cam:hunter2@192.0.2.20/live",
        "--transport", "tcp", "--no-record", "--segment-seconds", "30",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added stream 'porch' (rtsp://cam:***@192.0.2.20/live)" in added.stderr
    assert "hunter2" not in added.output
    porch = await _configured(api, "porch")
    assert (porch["origin"], porch["config"]["record"], porch["config"]["transport"],
            porch["config"]["segment_seconds"]) == ("api", False, "tcp", 30)  # fmt: skip

    stopped = await _vigil(api, "streams", "stop", "porch", "yard")
    assert stopped.exit_code == 0, stopped.output
    assert "stopped stream 'porch'" in stopped.stderr and "stopped stream 'yard'" in stopped.stderr
    assert (await _configured(api, "yard"))["config"]["enabled"] is False
    started = await _vigil(api, "streams", "start", "yard")
    assert started.exit_code == 0 and "started stream 'yard'" in started.stderr
    assert (await _configured(api, "yard"))["config"]["enabled"] is True

    removed = await _vigil(api, "streams", "rm", "porch")
    assert removed.exit_code == 0, removed.output
    assert "removed stream 'porch' (its recordings stay)" in removed.stderr
    assert "porch" not in _rows((await _vigil(api, "streams", "list")).stdout)

    again = await _vigil(api, "streams", "rm", "porch")
    assert again.exit_code == 1
    assert "error: no stream named 'porch' (404)" in again.stderr


async def test_one_missing_stream_does_not_stop_the_others(api: Api) -> None:
    ran = await _vigil(api, "streams", "stop", "gate", "nosuch", "yard")
    assert ran.exit_code == 1
    assert "stopped stream 'gate'" in ran.stderr and "stopped stream 'yard'" in ran.stderr
    assert "no stream named 'nosuch'" in ran.stderr
    assert [(await _configured(api, n))["config"]["enabled"] for n in ("gate", "yard")] == [
        False,
        False,
    ]


async def test_refusals_show_vigils_message_and_bad_usage_exits_2(api: Api) -> None:
    bad_source = await _vigil(api, "streams", "add", "porch", "ftp://192.0.2.20/x")
    assert bad_source.exit_code == 1
    assert "error:" in bad_source.stderr and "source" in bad_source.stderr
    assert "(422)" in bad_source.stderr
    taken = await _vigil(api, "streams", "add", "GATE", "test://ball")
    assert taken.exit_code == 1 and "(409)" in taken.stderr

    # Refused before anything is sent: nothing is stopped.
    bad_name = await _vigil(api, "streams", "stop", "gate", "../etc")
    assert bad_name.exit_code == 2
    assert "'../etc' is not a stream name" in bad_name.stderr
    assert (await _configured(api, "gate"))["config"]["enabled"] is True
    bad_transport = await _vigil(api, "streams", "add", "porch", "test://ball", "--transport", "x")
    assert bad_transport.exit_code == 2
    no_name = await _vigil(api, "streams", "start")
    assert no_name.exit_code == 2
    bad_url = await run_vigil("streams", "list", "--url", "localhost:8080", url=api.server.url)
    assert bad_url.exit_code == 2 and "--url must look like http://HOST:PORT" in bad_url.stderr


async def test_an_unreachable_vigil_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ran = await run_vigil("streams", "list", url=url)
    assert ran.exit_code == 1
    assert f"error: cannot reach Vigil at {url}: " in ran.stderr
    assert "Connection refused" in ran.stderr and "VIGILCTL_URL" in ran.stderr


async def test_a_missing_refused_or_too_weak_token_is_explained(secured_api: Api) -> None:
    api = secured_api
    missing = await _vigil(api, "streams", "list")
    assert missing.exit_code == 1
    assert f"Vigil at {api.server.url} needs a token: pass --token or set VIGILCTL_TOKEN" in (
        missing.stderr
    )
    wrong = await _vigil(api, "streams", "list", token="vgl_not-a-token")
    assert wrong.exit_code == 1
    assert "refused the token (401: unknown or revoked token)" in wrong.stderr
    assert "vgl_not-a-token" not in wrong.output

    viewer = await asyncio.to_thread(api.tokens.create, "dashboard", Role.VIEWER)
    await _until_accepted(api, viewer)
    listed = await _vigil(api, "streams", "list", token=viewer)
    assert listed.exit_code == 0 and "gate" in _rows(listed.stdout)
    weak = await _vigil(api, "streams", "stop", "gate", "yard", token=viewer)
    assert weak.exit_code == 1
    assert weak.stderr.count("error:") == 1  # the second stream is not tried
    assert (
        "the token may not do this (403: token 'dashboard' (viewer) may not do this; it needs "
        "the operator role)"
    ) in weak.stderr
    flag = await _vigil(api, "streams", "stop", "gate", "--token", CONFIG_TOKEN)
    assert flag.exit_code == 0, flag.output
    for ran in (listed, weak, flag):
        assert viewer not in ran.output and CONFIG_TOKEN not in ran.output


async def test_the_real_process_reads_its_variables_which_the_config_loader_ignores(
    secured_api: Api, tmp_path: Path
) -> None:
    env = {**os.environ, "VIGILCTL_URL": secured_api.server.url, "VIGILCTL_TOKEN": CONFIG_TOKEN,
           "COLUMNS": "200"}  # fmt: skip
    listed = await _process(env, "streams", "list")
    assert listed.exit_code == 0, listed.stderr
    assert _rows(listed.stdout)["gate"][0] == "streaming"
    help_text = await _process(env, "streams", "list", "--help")
    assert "VIGILCTL_TOKEN" in help_text.stdout and CONFIG_TOKEN not in help_text.stdout

    # The configuration loader (VIGIL_* overrides) ignores the client's variables.
    config = tmp_path / "vigil.yml"
    config.write_text('streams:\n  - {name: a, source: "test://ball"}\n')
    checked = await _process(env, "config", "check", str(config))
    assert checked.exit_code == 0, checked.stderr


async def _process(env: dict[str, str], *args: str) -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vigil", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


async def _configured(api: Api, name: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/streams/{name}")
    assert response.status_code == 200, response.text
    stream: dict[str, Any] = response.json()
    return stream


async def _until_accepted(api: Api, token: str) -> None:
    """A new token works within a second (the API caches the token list that long)."""
    async with asyncio.timeout(5):
        while (await api.client.get("/api/v1/status", headers=api.as_(token))).status_code != 200:
            await asyncio.sleep(0.1)
