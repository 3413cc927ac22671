"""The browser UI against a real Vigil: one `vigil run` process and one headless Chromium
(Debian's, driven by Selenium through the system chromedriver: nothing is downloaded) for the
whole module, so the browser tests cost seconds, not minutes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service

from tests.support.media import environment_without_vigil, wait_for
from vigil.store.tokens import hash_token

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver (scripts/bootstrap.sh)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
TOKEN = "vgl_browser-test-token"  # viewer: all the UI needs
OPERATOR_TOKEN = "vgl_browser-test-operator"  # the test's own calls: end sessions, restart
SIZE = (320, 240)
_saved: list[Path] = []


@dataclass
class Served:
    """A running `vigil run`: its base URL and log."""

    url: str
    log: Path
    whep: bool  # the WHEP endpoint exists in this Vigil
    process: subprocess.Popen[bytes]

    def call(self, method: str, path: str, **params: str) -> httpx.Response:
        """The API, as an operator."""
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        return httpx.request(method, self.url + path, params=params, headers=headers, timeout=30)

    def check(self) -> None:
        """AssertionError with the end of its log if Vigil is no longer running."""
        if self.process.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"vigil run exited ({self.process.returncode}):\n{tail}")


def _config(base: Path) -> str:
    camera = f"test://ball?size={SIZE[0]}x{SIZE[1]}&fps=10"
    return (
        f"data_dir: {base / 'data'}\n"
        "recording: {segment_seconds: 2}\n"
        "api: {tokens: ["
        f"{{name: browser, role: viewer, sha256: {hash_token(TOKEN)}}}, "
        f"{{name: ops, role: operator, sha256: {hash_token(OPERATOR_TOKEN)}}}]}}\n"
        "streams:\n"
        f'  - {{name: ball, source: "{camera}"}}\n'
        f'  - {{name: bars, source: "test://smpte?size=160x120&fps=5", record: false,\n'
        "      detect: {enabled: true, fps: 1, zones: [\n"
        "        {name: door, polygon: [[0.1, 0.5], [0.4, 0.5], [0.4, 0.95], [0.1, 0.95]]},\n"
        "        {name: road, mode: exclude, polygon: [[0.5, 0.1], [0.9, 0.1], [0.9, 0.4]]}]}}\n"
        f'  - {{name: spare, source: "test://ball?size=160x120&fps=5", enabled: false}}\n'
    )


@pytest.fixture(scope="module")
def vigil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Vigil with three test-pattern streams (one recorded, one not, one disabled), behind a
    viewer token."""
    base = tmp_path_factory.mktemp("web")
    config = base / "vigil.yml"
    config.write_text(_config(base))
    log = base / "vigil.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(config)], cwd=base, stdout=out,
            stderr=subprocess.STDOUT, env=environment_without_vigil(),
        )  # fmt: skip
    try:
        found: list[str] = []

        def api_line() -> bool:
            found[:] = re.findall(r"API:\s+(http://127\.0\.0\.1:\d+)", log.read_text())
            return bool(found) or process.poll() is not None

        wait_for(api_line, timeout=30, message="vigil run printed no API URL")
        assert found, log.read_text()
        url = found[0]
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, timeout=30)
        # The WHEP endpoint is another part of issue 6: without it, a POST finds no route.
        probe = httpx.post(f"{url}/ball/whep", content=b"", timeout=10, headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        yield Served(url, log, whep=probe.status_code not in (404, 405), process=process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1280,900", "--lang=en-GB",
        # WebRTC as users' browsers do it: host candidates hidden behind mDNS names, which
        # nobody here resolves; Vigil's ICE agent learns the browser's address from its checks
        # (a peer-reflexive candidate). So no --disable-features=WebRtcHideLocalIpsWithMdns.
        # Only loopback is reachable: no background calls to Google's services.
        "--no-first-run", "--disable-background-networking", "--disable-sync",
        "--disable-component-update", "--disable-default-apps",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path given: Selenium Manager (which would download one) is never run.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save what the browser shows as test-artifacts/web/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    _saved.append(path)
    print(f"screenshot: {path}")
    return path


def console_errors(driver: webdriver.Chrome, allowed: tuple[str, ...] = ()) -> list[str]:
    """The console's errors since the last call (reading the log empties it)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [
        entry["message"] for entry in entries
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)
    ]  # fmt: skip


def until(predicate: Any, timeout: float, message: str = "") -> Any:
    """Poll `predicate` until it returns something true; that value, or AssertionError. An
    element missing or replaced while it looks counts as false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None  # not on the page (yet), or redrawn meanwhile
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"not within {timeout} s")
        time.sleep(0.2)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.write_line(f"browser UI screenshots: {ARTIFACTS}")
