"""Metrics and traces of a running Vigil with real streams: its scrape passes promtool, a real
Prometheus scrapes it with a viewer token, the REST view shows the same live numbers, and a
stream start, a failed one, a reconnect, an API request and a segment close become spans."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.observability.conftest import Spans
from tests.support.media import free_port, simulator
from tests.support.metrics import promtool_problems, samples, value
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.app import Vigil
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration

VIEWER = "vgl_scraper-token"
PATTERN = "test://ball?size=160x120&fps=10&bitrate=100"


def _streaming_with_frames(vigil: Vigil, names: list[str]) -> bool:
    assert vigil.streams is not None
    statuses = {status.name: status for status in vigil.streams.statuses()}
    return all(
        name in statuses
        and statuses[name].state is StreamState.STREAMING
        and statuses[name].fps > 0
        for name in names
    )


async def test_metrics_of_live_streams_and_a_real_prometheus_scrape(tmp_path: Path) -> None:
    digest = hashlib.sha256(VIEWER.encode()).hexdigest()
    with simulator(cameras=1, size="320x240", fps=10, bitrate=300, gop=10) as (port, _sim):
        config = (
            f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 2}}\n"
            f"api: {{tokens: [{{name: prometheus, role: viewer, sha256: '{digest}'}}]}}\n"
            f'streams:\n  - {{name: pattern, source: "{PATTERN}"}}\n'
            f'  - {{name: camera, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp}}\n'
        )
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.api is not None
            closed = ClosedSegments(vigil)
            names = ["pattern", "camera"]
            await until(lambda: _streaming_with_frames(vigil, names), timeout=60)
            await until(lambda: closed.at_least(["pattern"], 1), timeout=60)
            headers = {"Authorization": f"Bearer {VIEWER}"}
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=10) as client:
                assert (await client.get("/metrics")).status_code == 401
                view = (await client.get("/api/v1/streams/camera", headers=headers)).json()
                text = (await client.get("/metrics", headers=headers)).text
            await _scraped_by_prometheus(tmp_path, vigil.api.url)

    assert view["fps"] > 0 and view["bitrate_bps"] > 0
    assert view["last_frame_age_s"] is not None and view["last_frame_age_s"] < 5
    assert promtool_problems(text) == ""
    found = samples(text)
    for name in names:
        assert value(found, "vigil_stream_up", stream=name) == 1.0
        assert value(found, "vigil_stream_state", stream=name, state="streaming") == 1.0
        assert (value(found, "vigil_stream_frames_per_second", stream=name) or 0) > 0
        assert (value(found, "vigil_stream_bitrate_bytes_per_second", stream=name) or 0) > 0
        assert (value(found, "vigil_stream_received_frames_total", stream=name) or 0) > 0
        assert (value(found, "vigil_stream_received_bytes_total", stream=name) or 0) > 0
        age = value(found, "vigil_stream_last_frame_age_seconds", stream=name)
        assert age is not None and age < 5
    assert (value(found, "vigil_recorded_segments_total", stream="pattern") or 0) >= 1
    assert (value(found, "vigil_recorded_bytes_total", stream="pattern") or 0) > 0
    assert (value(found, "vigil_event_bus_subscribers") or 0) >= 1  # ClosedSegments, at least
    assert "vigil_http_request_duration_seconds_bucket" in found


async def _scraped_by_prometheus(tmp_path: Path, target_url: str) -> None:
    """Run a real Prometheus (its own port and storage, nothing of the system's service) that
    scrapes Vigil every second with the viewer token; wait until it has stored a value."""
    listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: vigil\n"
        f"    authorization: {{credentials: {VIEWER}}}\n"
        f"    static_configs: [{{targets: ['{target_url.removeprefix('http://')}']}}]\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={listen}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=5) as client:

            async def stored() -> bool:
                try:
                    answer = await client.get(
                        "/api/v1/query", params={"query": 'vigil_stream_up{stream="camera"}'}
                    )
                except httpx.HTTPError:
                    return False  # not listening yet
                result = answer.json()["data"]["result"] if answer.status_code == 200 else []
                return bool(result) and result[0]["value"][1] == "1"

            async with asyncio.timeout(60):
                while not await stored():
                    assert process.poll() is None, log.read_text()
                    await asyncio.sleep(0.5)
            targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
            assert [target["health"] for target in targets] == ["up"], targets
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 20)


async def test_control_operations_and_requests_become_spans(tmp_path: Path, spans: Spans) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 2}}\n"
        f'streams:\n  - {{name: pattern, source: "{PATTERN}"}}\n'
        f'  - {{name: dead, source: "rtsp://127.0.0.1:{free_port()}/cam", transport: tcp}}\n'
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.api is not None
        closed = ClosedSegments(vigil)
        await until(lambda: _streaming_with_frames(vigil, ["pattern"]), timeout=60)
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=10) as client:
            traceparent = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            assert (await client.get("/api/v1/streams/pattern", headers=traceparent)).is_success
            await client.get("/api/v1/streams", params={"token": "vgl_secret", "limit": 5})
            assert (await client.get("/metrics")).is_success  # not traced: scrapes are noise
        await until(lambda: closed.at_least(["pattern"], 1), timeout=60)
        await until(lambda: bool(spans.named("segment.close")), timeout=10)
        await until(lambda: _for(spans, "stream.reconnect", "dead") is not None, timeout=30)

    start = _for(spans, "stream.start", "pattern")
    assert start is not None and start.status.is_ok
    assert (start.attributes or {})["vigil.whole_pipeline"] is True
    assert "test pattern" in str((start.attributes or {})["vigil.source"])
    failed = _for(spans, "stream.start", "dead")
    assert failed is not None and not failed.status.is_ok
    assert "refused" in (failed.status.description or "").lower()

    (request,) = [span for span in spans.all() if span.name == "GET /api/v1/streams/{name}"]
    assert (request.attributes or {})["http.route"] == "/api/v1/streams/{name}"
    # The caller's trace goes on: its traceparent header was honoured.
    assert request.context is not None and format(request.context.trace_id, "032x") == trace_id

    # A credential in a query string never reaches a span.
    (listing,) = spans.named("GET /api/v1/streams")
    assert (listing.attributes or {})["url.query"] == "token=%2A%2A%2A&limit=5"
    assert not [span for span in spans.all() if span.name.startswith("GET /metrics")]

    close = spans.named("segment.close")[0]
    assert (close.attributes or {})["vigil.stream"] == "pattern"
    assert str((close.attributes or {})["vigil.path"]).endswith(".mp4")


def _for(spans: Spans, name: str, stream: str):  # type: ignore[no-untyped-def]
    return next(
        (s for s in spans.named(name) if (s.attributes or {}).get("vigil.stream") == stream), None
    )
