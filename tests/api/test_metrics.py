"""`GET /metrics` over real HTTP: who may scrape it, what it holds, and that Prometheus' own
linter (`promtool check metrics`) has nothing to say about it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, serve
from tests.support.metrics import promtool_problems, samples, value
from vigil.store.tokens import Role, hash_token
from vigil.streams.state import StreamState

VIEWER_TOKEN = "vgl_prometheus-scraper"


@pytest.fixture
async def scraped_api(tmp_path: Path) -> AsyncIterator[Api]:
    """Tokens exist: the scraper has a viewer token from the configuration file."""
    async for served in serve(tmp_path, {hash_token(VIEWER_TOKEN): ("prometheus", Role.VIEWER)}):
        gate = served.streams.items["gate"]
        served.streams.items["gate"] = dataclasses.replace(
            gate, fps=25.0, bitrate_bps=2_000_000.0, last_frame_age_s=0.04,
            frames_received=2500, bytes_received=25_000_000, not_streaming_s=1.5,
        )  # fmt: skip
        yield served


async def test_a_viewer_token_may_scrape_and_nobody_without_one(scraped_api: Api) -> None:
    api = scraped_api
    denied = await api.client.get("/metrics")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert (await api.client.get("/metrics", headers=api.as_("vgl_wrong"))).status_code == 401
    allowed = await api.client.get("/metrics", headers=api.as_(VIEWER_TOKEN))
    assert allowed.status_code == 200
    assert allowed.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_without_tokens_metrics_are_open_like_the_rest(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 200


async def test_the_scrape_passes_promtool(scraped_api: Api) -> None:
    api = scraped_api
    await api.client.get("/api/v1/streams/gate", headers=api.as_(VIEWER_TOKEN))
    await api.client.get("/no/such/path")
    text = (await api.client.get("/metrics", headers=api.as_(VIEWER_TOKEN))).text
    assert promtool_problems(text) == ""


async def test_every_stream_has_its_numbers(scraped_api: Api) -> None:
    api = scraped_api
    api.streams.items["yard"] = dataclasses.replace(
        api.streams.items["yard"], state=StreamState.STALLED, last_frame_age_s=None
    )
    found = samples((await api.client.get("/metrics", headers=api.as_(VIEWER_TOKEN))).text)
    assert value(found, "vigil_stream_up", stream="gate") == 1.0
    assert value(found, "vigil_stream_up", stream="yard") == 0.0
    # The enum pattern: one series per state, 1 for the current one.
    yard_states = {
        labels: sample
        for labels, sample in found["vigil_stream_state"].items()
        if ("stream", "yard") in labels
    }
    assert len(yard_states) == len(StreamState)
    assert value(found, "vigil_stream_state", stream="yard", state="stalled") == 1.0
    assert sum(yard_states.values()) == 1.0
    assert value(found, "vigil_stream_frames_per_second", stream="gate") == 25.0
    assert value(found, "vigil_stream_bitrate_bytes_per_second", stream="gate") == 250_000.0
    assert value(found, "vigil_stream_received_frames_total", stream="gate") == 2500.0
    assert value(found, "vigil_stream_received_bytes_total", stream="gate") == 25_000_000.0
    assert value(found, "vigil_stream_reconnects_total", stream="gate") == 2.0
    assert value(found, "vigil_stream_not_streaming_seconds_total", stream="gate") == 1.5
    assert value(found, "vigil_stream_last_frame_age_seconds", stream="gate") == 0.04
    # No frame yet: no age at all, rather than a made-up one.
    assert value(found, "vigil_stream_last_frame_age_seconds", stream="yard") is None
    assert value(found, "vigil_build_info", version="0.test", gstreamer="1.22.0") == 1.0
    assert value(found, "vigil_event_bus_subscribers") is not None
    # prometheus_client's process and Python collectors.
    assert "process_resident_memory_bytes" in found
    assert "python_info" in found


async def test_a_stream_that_goes_away_leaves_no_series(scraped_api: Api) -> None:
    api = scraped_api
    del api.streams.items["yard"]
    text = (await api.client.get("/metrics", headers=api.as_(VIEWER_TOKEN))).text
    # (Process-wide counters such as transitions keep what they counted, as counters do.)
    read_now = [
        line for line in text.splitlines()
        if 'stream="yard"' in line and line.startswith(("vigil_stream_up", "vigil_stream_state",
                                                        "vigil_stream_frames"))
    ]  # fmt: skip
    assert read_now == []
    assert 'vigil_stream_up{stream="gate"}' in text


async def test_the_event_bus_subscriber_count_is_live(scraped_api: Api) -> None:
    api = scraped_api

    async def subscribers() -> float | None:
        text = (await api.client.get("/metrics", headers=api.as_(VIEWER_TOKEN))).text
        return value(samples(text), "vigil_event_bus_subscribers")

    before = await subscribers()
    assert before is not None
    with api.services.bus.subscribe(), api.services.bus.subscribe():
        assert await subscribers() == before + 2
    assert await subscribers() == before


async def test_request_durations_are_labelled_by_route_template(scraped_api: Api) -> None:
    api = scraped_api
    headers = api.as_(VIEWER_TOKEN)
    await api.client.get("/api/v1/streams/gate", headers=headers)
    await api.client.get("/api/v1/streams/nosuch", headers=headers)
    await api.client.get("/api/v1/streams/gate")  # 401
    await api.client.get("/wp-admin/setup.php")  # a scanner: no route
    await api.client.request("BREW", "/api/v1/streams", headers=headers)
    found = samples((await api.client.get("/metrics", headers=headers)).text)
    counts = found["vigil_http_request_duration_seconds_count"]
    route = "/api/v1/streams/{name}"

    def count(**labels: str) -> float:
        return counts.get(tuple(sorted(labels.items())), 0.0)

    assert count(route=route, method="GET", status="200") >= 1
    assert count(route=route, method="GET", status="404") >= 1
    assert count(route=route, method="GET", status="401") >= 1
    assert count(route="unmatched", method="GET", status="404") >= 1
    assert count(route="/api/v1/streams", method="other", status="405") >= 1
    routes = {dict(labels)["route"] for labels in counts}
    assert not any("gate" in r or "nosuch" in r or "wp-admin" in r for r in routes), routes
