"""The browser UI in Debian's headless Chromium against a running Vigil: the token dialog, the
grid of every stream with its state, a live tile playing over WHEP, the stream page's
timeline playing a recording, a narrow screen; the console stays free of errors throughout.
Screenshots go to test-artifacts/web/."""

from __future__ import annotations

from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.web.conftest import SIZE, TOKEN, Served, console_errors, screenshot, until

pytestmark = pytest.mark.e2e

# What a <video> shows, drawn to a canvas: its size, and how much its pixels vary (a blank
# or single-colour frame has a spread near 0).
FRAME_SCRIPT = """
const video = document.querySelector(arguments[0]);
if (!video || !video.videoWidth) return null;
const canvas = document.createElement("canvas");
canvas.width = video.videoWidth;
canvas.height = video.videoHeight;
const context = canvas.getContext("2d");
context.drawImage(video, 0, 0);
const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
let sum = 0, squares = 0, n = 0;
for (let i = 0; i < data.length; i += 4) {
  const luma = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
  sum += luma; squares += luma * luma; n += 1;
}
const mean = sum / n;
return {width: canvas.width, height: canvas.height, spread: Math.sqrt(squares / n - mean * mean),
        time: video.currentTime};
"""


def _settle(driver: webdriver.Chrome, vigil: Served) -> None:
    """Wait until no tile is still negotiating a WHEP session: a page left in the middle of
    that leaves behind a session the server only times out, and each test should start with
    the sessions it makes itself."""
    connecting = 'article.tile[data-live="connecting"]'
    if vigil.whep:
        until(lambda: not driver.find_elements(By.CSS_SELECTOR, connecting), 20,
              "a tile stays connecting")  # fmt: skip


def _open(driver: webdriver.Chrome, vigil: Served, hash_path: str = "#/") -> None:
    """Load the UI with the token already in localStorage (as after the dialog)."""
    vigil.check()
    _settle(driver, vigil)
    driver.get(f"{vigil.url}/ui/icon.svg")  # same origin: its localStorage is the page's
    driver.execute_script("localStorage.setItem('vigil.token', arguments[0])", TOKEN)
    driver.get(f"{vigil.url}/{hash_path}")


def _allowed(vigil: Served) -> tuple[str, ...]:
    # Until the WHEP endpoint exists the tiles' offers find no route (and fall back to
    # snapshots): the browser logs each refused request.
    return () if vigil.whep else ("/whep - Failed to load resource: the server responded with "
                                  "a status of 404",)  # fmt: skip


def _tile(driver: webdriver.Chrome, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'article.tile[data-stream="{name}"]')


def _plays(driver: webdriver.Chrome, selector: str, seconds: float = 1.0) -> dict[str, Any]:
    """Waits until the video's currentTime has advanced by `seconds`; then its frame."""
    first = until(lambda: driver.execute_script(FRAME_SCRIPT, selector), 20,
                  f"{selector} shows no frame")  # fmt: skip
    until(lambda: driver.execute_script(FRAME_SCRIPT, selector)["time"] > first["time"] + seconds,
          20, f"{selector}: currentTime does not advance")  # fmt: skip
    frame: dict[str, Any] = driver.execute_script(FRAME_SCRIPT, selector)
    return frame


def test_the_token_is_asked_for_once_and_kept(vigil: Served, browser: webdriver.Chrome) -> None:
    def asking() -> bool:
        return browser.find_element(By.ID, "token-dialog").get_attribute("open") is not None

    def tiles() -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, "article.tile")

    browser.get(f"{vigil.url}/ui/icon.svg")
    browser.execute_script("localStorage.clear()")
    browser.get(f"{vigil.url}/")
    until(asking, 10, "no token dialog after a 401")
    browser.find_element(By.ID, "token-input").send_keys(TOKEN + Keys.ENTER)
    until(tiles, 10, "no tiles once the token is given")
    assert not asking()
    assert browser.execute_script("return localStorage.getItem('vigil.token')") == TOKEN
    console_errors(browser)  # the 401s that asked for it

    _settle(browser, vigil)
    browser.refresh()
    until(tiles, 10, "no tiles after a reload")
    assert not asking(), "asked again though the token is kept"
    _settle(browser, vigil)
    forget = browser.find_element(By.ID, "forget-token")
    assert forget.is_displayed()
    forget.click()
    until(asking, 10, "the token was forgotten, but not asked for again")
    assert browser.execute_script("return localStorage.getItem('vigil.token')") is None
    console_errors(browser)


def test_the_grid_shows_every_stream_with_its_state(
    vigil: Served, browser: webdriver.Chrome
) -> None:
    _open(browser, vigil)
    states = {"ball": "streaming", "bars": "streaming", "spare": "stopped"}
    until(lambda: all(t.get_attribute("data-state") == states.get(t.get_attribute("data-stream"))
                      for t in browser.find_elements(By.CSS_SELECTOR, "article.tile"))
          and len(browser.find_elements(By.CSS_SELECTOR, "article.tile")) == 3, 20,
          "the grid does not show the three streams in their states")  # fmt: skip
    for name, state in states.items():
        tile = _tile(browser, name)
        assert tile.find_element(By.CSS_SELECTOR, ".name").text == name
        assert tile.find_element(By.CSS_SELECTOR, ".state").text.lower() == state
    assert _tile(browser, "ball").find_element(By.CSS_SELECTOR, ".fps").text.endswith("fps")
    # Each streaming tile shows a picture: live video or, without it, the latest snapshot.
    until(lambda: all(
        _tile(browser, name).get_attribute("data-live") == "live"
        or browser.execute_script(
            "const i = arguments[0].querySelector('img'); return !i.hidden && i.naturalWidth > 0",
            _tile(browser, name))
        for name in ("ball", "bars")), 20, "a streaming tile shows no picture")  # fmt: skip
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Cameras"
    screenshot(browser, "grid")
    assert console_errors(browser, _allowed(vigil)) == []


def test_a_live_tile_plays(vigil: Served, browser: webdriver.Chrome) -> None:
    if not vigil.whep:
        pytest.skip("this Vigil has no WHEP endpoint yet (POST /{stream}/whep finds no route)")
    _open(browser, vigil)
    until(lambda: _tile(browser, "ball").get_attribute("data-live") == "live", 30,
          "the ball tile did not go live over WHEP")  # fmt: skip
    frame = _plays(browser, 'article.tile[data-stream="ball"] video', seconds=1.5)
    assert (frame["width"], frame["height"]) == SIZE
    assert frame["spread"] > 5, f"the live frame is blank: {frame}"
    screenshot(browser, "live")
    assert console_errors(browser) == []


def test_a_live_tile_comes_back_by_itself(vigil: Served, browser: webdriver.Chrome) -> None:
    """Its session ended by the server (as a network failure would), then its stream
    restarted: each time the tile plays again without anyone touching the page."""
    if not vigil.whep:
        pytest.skip("this Vigil has no WHEP endpoint yet (POST /{stream}/whep finds no route)")
    _open(browser, vigil, "#/stream/ball")
    selector = 'article.tile[data-stream="ball"] video'

    tile = until(lambda: _tile(browser, "ball"), 10, "no live view")
    until(lambda: tile.get_attribute("data-live") == "live", 30, "the tile did not go live")
    ended = tile.get_attribute("data-session")
    listed = vigil.call("GET", "/api/v1/sessions", stream="ball", kind="whep").json()
    assert ended in {session["id"] for session in listed}
    assert vigil.call("DELETE", f"/api/v1/sessions/{ended}").status_code == 204
    until(lambda: tile.get_attribute("data-live") == "live"
          and tile.get_attribute("data-session") not in ("", ended), 30,
          "the tile did not play again in a new session after its session ended")  # fmt: skip
    _plays(browser, selector, seconds=1.0)

    assert vigil.call("POST", "/api/v1/streams/ball/stop").status_code == 200
    until(lambda: tile.get_attribute("data-state") == "stopped", 15)
    assert vigil.call("POST", "/api/v1/streams/ball/start").status_code == 200
    until(lambda: tile.get_attribute("data-state") == "streaming", 30)
    until(lambda: tile.get_attribute("data-live") == "live", 30,
          "the tile did not play again after the stream restarted")  # fmt: skip
    _plays(browser, selector, seconds=1.0)
    screenshot(browser, "live-again")
    # Ending sessions and stopping the stream refuse some requests on purpose (the old
    # session's DELETE, offers while the stream is down): the browser logs those.
    assert console_errors(browser, ("/whep", "snapshot.jpg")) == []


def test_the_stream_page_plays_a_recording(vigil: Served, browser: webdriver.Chrome) -> None:
    _open(browser, vigil, "#/stream/ball")
    until(lambda: browser.find_element(By.CSS_SELECTOR, "h1").text == "ball", 10)
    run = until(lambda: browser.find_elements(By.CSS_SELECTOR, ".track button.run"), 20,
                "the timeline shows no recording")[0]  # fmt: skip
    assert run.get_attribute("aria-label").startswith("Play the recording from")
    run.click()
    frame = _plays(browser, "video.playback", seconds=1.0)
    assert (frame["width"], frame["height"]) == SIZE
    assert frame["spread"] > 5, f"the recorded frame is blank: {frame}"
    status = browser.find_element(By.CSS_SELECTOR, "video.playback + .status").text
    assert status.startswith("Playing"), status
    # The stream's events: it started (stored a moment after it happened).
    until(lambda: "stream.state" in browser.find_element(By.CSS_SELECTOR, ".events-list").text,
          15, "no stream.state event listed")  # fmt: skip
    screenshot(browser, "stream")

    # Keyboard: Enter on a recording plays it (a new clip, from its start); focus stays.
    video = browser.find_element(By.CSS_SELECTOR, "video.playback")
    played = video.get_attribute("src")
    pressed: list[str] = []

    def press_enter() -> bool:
        # The timeline is redrawn as segments arrive: a button found a moment ago may be gone
        # (stale) by the time the key is sent; find it again then.
        run = browser.find_elements(By.CSS_SELECTOR, ".track button.run")[0]
        start = run.get_attribute("data-start")
        run.send_keys(Keys.ENTER)
        pressed.append(start)
        return True

    until(press_enter, 20, "no recording to press Enter on")
    start = pressed[-1]
    until(lambda: video.get_attribute("src") != played, 20, "Enter on a recording did nothing")
    assert video.get_attribute("data-clip-start") >= start
    _plays(browser, "video.playback", seconds=0.5)
    until(lambda: browser.switch_to.active_element.get_attribute("data-start") == start, 10,
          "the focus left the recording that was played")  # fmt: skip
    assert console_errors(browser, _allowed(vigil)) == []


def test_a_narrow_screen_has_no_sideways_scrolling(
    vigil: Served, browser: webdriver.Chrome
) -> None:
    browser.set_window_size(390, 844)
    try:
        for name, path in (("narrow-grid", "#/"), ("narrow-stream", "#/stream/ball")):
            _open(browser, vigil, path)
            until(lambda: browser.find_elements(By.CSS_SELECTOR, "article.tile"), 10)
            until(lambda: browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"), 5,
                f"{path} scrolls sideways at 390 px")  # fmt: skip
            screenshot(browser, name)
    finally:
        browser.set_window_size(1280, 900)
    assert console_errors(browser, _allowed(vigil)) == []


def test_the_timeline_and_link_logic(vigil: Served, browser: webdriver.Chrome) -> None:
    """The pure functions behind the timeline and the ICE servers of WHEP answers, run by the
    browser that uses them."""
    _open(browser, vigil)
    result = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([import("/ui/timeline.js"), import("/ui/live.js")]).then(([t, live]) => {
          const seg = (start, end, status = "complete") => ({
            start: new Date(start * 1000).toISOString(),
            end: end === null ? null : new Date(end * 1000).toISOString(), status});
          const runs = t.runsOf([seg(0, 60), seg(60.5, 120), seg(200, 260, "missing"),
                                 seg(300, 360), seg(361, null)], 400000);
          const run = {start: 1000000, end: 1200000};
          const links = '<stun:stun.example:3478>; rel="ice-server", </x>; rel="next", '
            + '<turn:turn.example:3478?transport=udp>; rel="ice-server"; username="a\\\\"b"; '
            + 'credential="p,w;d"; credential-type="password"';
          done({runs, plays: [t.playTimeIn(run, 0), t.playTimeIn(run, 1100000),
                              t.playTimeIn(run, 5000000)],
                ice: live.iceServersFromLinks(links)});
        }).catch((error) => done({error: String(error)}));
    """)
    assert "error" not in result, result
    assert result["runs"] == [
        {"start": 0, "end": 120000, "missing": False},  # joined across half a second
        {"start": 200000, "end": 260000, "missing": True},
        {"start": 300000, "end": 400000, "missing": False},  # the open one lasts until now
    ]
    # Before the run: its start; inside: there; past its end: its last minute.
    assert result["plays"] == [1000000, 1100000, 1140000]
    assert result["ice"] == [
        {"urls": "stun:stun.example:3478"},
        {"urls": "turn:turn.example:3478?transport=udp", "username": 'a"b', "credential": "p,w;d"},
    ]


# Answers `…/detections/latest` from `window.__latest` (the real one is tested in
# tests/api/test_detection_events.py; here the page's drawing of it is).
FAKE_LATEST = """
window.__latest = arguments[0];
if (!window.__realFetch) {
  window.__realFetch = window.fetch;
  window.fetch = (url, options) => String(url).includes("/detections/latest")
    ? Promise.resolve(new Response(JSON.stringify(window.__latest),
        {status: 200, headers: {"Content-Type": "application/json"}}))
    : window.__realFetch(url, options);
}
"""

# Where an element is, as fractions of the picture (the overlay laid over the video).
PLACE = """
const layer = document.querySelector(".detections").getBoundingClientRect();
const box = arguments[0].getBoundingClientRect();
return {left: (box.left - layer.left) / layer.width, top: (box.top - layer.top) / layer.height,
        width: box.width / layer.width, height: box.height / layer.height,
        aspect: layer.width / layer.height};
"""


def test_the_stream_page_draws_what_the_detector_sees(
    vigil: Served, browser: webdriver.Chrome
) -> None:
    """`bars` detects with two zones and no model installed: its page says why detection
    failed and draws the zones over the picture itself (4:3 inside a 16:9 frame); boxes of
    the detector's latest frame are drawn where they are, and taken away when no newer frame
    comes."""
    _open(browser, vigil, "#/stream/bars")
    summary = until(lambda: browser.find_element(By.CSS_SELECTOR, ".detect-summary"), 15,
                    "the stream page shows no detection line")  # fmt: skip
    until(lambda: "vigil models install" in summary.text, 20,
          "the page does not say why detection failed")  # fmt: skip
    assert summary.text.startswith("Detection failed: model 'nanodet' is not installed")
    zones = {z.get_attribute("data-zone"): z.get_attribute("class")
             for z in browser.find_elements(By.CSS_SELECTOR, ".detections polygon")}  # fmt: skip
    assert zones == {"door": "zone zone-include", "road": "zone zone-exclude"}
    layer = browser.find_element(By.CSS_SELECTOR, ".detections")
    until(lambda: abs(browser.execute_script(PLACE, layer)["aspect"] - 4 / 3) < 0.03, 20,
          "the overlay is not laid over the 4:3 picture")  # fmt: skip
    door = browser.find_element(By.CSS_SELECTOR, '.detections polygon[data-zone="door"]')
    place = browser.execute_script(PLACE, door)
    assert abs(place["left"] - 0.1) < 0.02 and abs(place["top"] - 0.5) < 0.02, place

    latest = {
        "stream": "bars", "state": "running", "reason": "", "fps": 1,
        "at": "2026-11-24T22:00:00+00:00",
        "detections": [
            {"label": "person", "score": 0.8249, "box": [0.2, 0.3, 0.35, 0.9],
             "object_id": "a3f9c0de12345678", "zones": ["door"]},
            {"label": "car", "score": 0.51, "box": [0.6, 0.0, 0.95, 0.3], "object_id": None,
             "zones": []},
        ],
    }  # fmt: skip
    browser.execute_script(FAKE_LATEST, latest)
    boxes = until(lambda: browser.find_elements(By.CSS_SELECTOR, ".detections .box"), 10,
                  "no box drawn")  # fmt: skip
    assert [b.text for b in boxes] == ["person 82 % #a3f9", "car 51 %"]
    assert summary.text == "Detection running · 1 person, 1 car"
    person = browser.execute_script(PLACE, boxes[0])
    expected = {"left": 0.2, "top": 0.3, "width": 0.15, "height": 0.6}
    assert all(abs(person[k] - v) < 0.02 for k, v in expected.items()), person
    assert "label-inside" in boxes[1].get_attribute("class")  # at the top: caption inside
    screenshot(browser, "detections")

    # The same frame again and again (the detector stopped sending): the boxes go.
    until(lambda: not browser.find_elements(By.CSS_SELECTOR, ".detections .box"), 15,
          "boxes of a frame that is no longer fresh stay up")  # fmt: skip
    # Turned off: no overlay, and it stays off on the next visit.
    browser.find_element(By.CSS_SELECTOR, "#show-detections").click()
    assert not layer.is_displayed()
    _open(browser, vigil, "#/stream/bars")
    toggle = until(lambda: browser.find_element(By.CSS_SELECTOR, "#show-detections"), 15)
    assert not toggle.is_selected()
    browser.execute_script("localStorage.removeItem('vigil.showDetections')")
    assert console_errors(browser, _allowed(vigil)) == []


# Adds `in_view` to bars' detection in the stream list the page reads (the real one is tested
# in tests/inference/test_zone_events.py; here the tile's showing of it is).
FAKE_IN_VIEW = """
const inView = arguments[0];
const real = window.fetch;
window.fetch = async (url, options) => {
  const response = await real(url, options);
  if (!String(url).endsWith("/api/v1/streams") || !response.ok) return response;
  const streams = await response.json();
  for (const stream of streams) {
    if (stream.name === "bars" && stream.detection) stream.detection.in_view = inView;
  }
  return new Response(JSON.stringify(streams), {status: 200,
    headers: {"Content-Type": "application/json"}});
};
"""


def test_a_tile_says_what_is_in_view(vigil: Served, browser: webdriver.Chrome) -> None:
    _open(browser, vigil)

    def badge() -> Any:
        return _tile(browser, "bars").find_element(By.CSS_SELECTOR, ".objects")

    until(lambda: badge(), 15, "no bars tile")
    assert not badge().is_displayed()  # nothing tracked (no model here)
    browser.execute_script(FAKE_IN_VIEW, {"person": 2, "car": 1})
    until(lambda: badge().is_displayed() and badge().text == "2 person, 1 car", 15,
          "the tile does not say what is in view")  # fmt: skip
    assert console_errors(browser, _allowed(vigil)) == []


def test_the_detection_overlay_logic(vigil: Served, browser: webdriver.Chrome) -> None:
    """The pure functions behind the overlay, run by the browser that uses them."""
    _open(browser, vigil)
    result = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import("/ui/detections.js").then((d) => done({
          pillar: d.containedRect(1600, 900, 160, 120),
          letter: d.containedRect(400, 400, 1920, 1080),
          unknown: d.containedRect(400, 300, 0, 0),
          stale: [d.staleAfterMs(0.2), d.staleAfterMs(1), d.staleAfterMs(5)],
          off: d.summary(null),
          idle: d.summary({state: "running", detections: []}),
        })).catch((error) => done({error: String(error)}));
    """)
    assert "error" not in result, result
    assert result["pillar"] == {"left": 0.125, "top": 0, "width": 0.75, "height": 1}
    assert result["letter"] == {"left": 0, "top": 0.21875, "width": 1, "height": 0.5625}
    assert result["unknown"] == {"left": 0, "top": 0, "width": 1, "height": 1}
    assert result["stale"] == [15000, 3000, 2000]
    assert result["off"] == "Detection is off for this stream."
    assert result["idle"] == "Detection running · nothing in view"
