"""Real faults: cameras that vanish, come back changed, flap, sit behind a cut link, refuse us
or never send a keyframe. Streams heal by themselves, gaps are accounted, others never notice."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.faults import SimCamera, camera, flapping, network_namespace
from tests.support.media import ffprobe
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.app import Vigil
from vigil.events import StreamStateChanged
from vigil.store.db import Database
from vigil.store.recordings import GapRow, GapStore, SegmentRow, SegmentStore
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration

FRAME = 1 / 25


def _config(tmp_path: Path, streams: dict[str, str], extra: str = "") -> str:
    lines = "".join(
        f'  - {{name: {name}, source: "{url}", transport: tcp}}\n' for name, url in streams.items()
    )
    return (
        f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 4}}\n{extra}"
        f"streams:\n{lines}"
    )


def _rows(tmp_path: Path) -> tuple[list[SegmentRow], list[GapRow]]:
    with Database(tmp_path / "data" / "vigil.db") as db:
        return SegmentStore(db).list_segments(limit=100_000), GapStore(db).list_gaps()


def _state(vigil: Vigil, name: str) -> StreamState | None:
    assert vigil.streams is not None
    status = vigil.streams.status(name)
    return status.state if status else None


def _wall(monotonic: float) -> datetime:
    """The wall-clock time of a time.monotonic() reading (for comparing with recordings)."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - monotonic)


def _assert_contiguous(segments: list[SegmentRow]) -> None:
    for before, after in itertools.pairwise(sorted(segments, key=lambda r: r.start)):
        assert before.end is not None
        gap = (after.start - before.end).total_seconds()
        assert abs(gap) < 2 * FRAME, f"{after.path}: {gap:.3f} s after the previous segment"


def _counted(stream: str) -> tuple[float, float]:
    """(streaming -> stalled transitions, gaps) of `stream` as Prometheus would scrape them."""
    stalls = REGISTRY.get_sample_value(
        "vigil_stream_transitions_total",
        {"stream": stream, "from_state": "streaming", "to_state": "stalled"},
    )
    gaps = REGISTRY.get_sample_value("vigil_recording_gaps_total", {"stream": stream})
    return (stalls or 0.0, gaps or 0.0)


async def test_camera_outage_is_healed_and_the_gap_covers_it(tmp_path: Path) -> None:
    cam = SimCamera(cameras=2)
    cam.start()
    try:
        config = _config(tmp_path, {"a": cam.url(1), "b": cam.url(2)})
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.bus is not None
            states = vigil.bus.subscribe(lambda e: isinstance(e, StreamStateChanged))
            closed = ClosedSegments(vigil)
            await until(lambda: closed.at_least(["a", "b"], 1), timeout=60)
            metrics_before = {name: _counted(name) for name in ("a", "b")}
            cam.stop()
            down_at = time.monotonic()
            await asyncio.sleep(10)  # the outage
            back_at = cam.start()
            await until(
                lambda: (
                    _state(vigil, "a") is StreamState.STREAMING
                    and _state(vigil, "b") is StreamState.STREAMING
                    and time.monotonic() > back_at + 1
                ),
                timeout=60,
            )
            await until(lambda: closed.at_least(["a", "b"], 3), timeout=60)
            seen: dict[str, list[str]] = {"a": [], "b": []}
            while (event := states.get_nowait()) is not None:
                assert isinstance(event, StreamStateChanged)
                seen[event.stream].append(event.new)
            metrics_after = {name: _counted(name) for name in ("a", "b")}
    finally:
        cam.stop()

    for name in ("a", "b"):  # every transition and the gap are counted in the metrics
        stalls, gaps_counted = (y - x for x, y in zip(metrics_before[name], metrics_after[name],
                                                     strict=True))  # fmt: skip
        assert (stalls, gaps_counted) == (seen[name].count("stalled"), 1)

    segments, gaps = _rows(tmp_path)
    down, back = _wall(down_at), _wall(back_at)
    for name in ("a", "b"):
        # stalled → reconnecting → streaming, in that order, after the outage began.
        history = seen[name]
        stall = history.index("stalled")
        assert history[stall : stall + 2] == ["stalled", "reconnecting"], history
        assert history[-1] == "streaming"
        [gap] = [g for g in gaps if g.stream == name]
        assert gap.end is not None
        # The gap covers the outage: it starts where the last frame before it was recorded,
        # and ends where the first frame after it was.
        assert gap.start <= down + timedelta(seconds=0.5)
        assert gap.end >= back
        assert (gap.end - back).total_seconds() <= 2.0, "recording resumed late"
        mine = sorted((r for r in segments if r.stream == name), key=lambda r: r.start)
        before = [r for r in mine if r.start < gap.start]
        after = [r for r in mine if r.start >= gap.end]
        assert before and after and len(before) + len(after) == len(mine)
        assert before[-1].end is not None
        assert abs((before[-1].end - gap.start).total_seconds()) < 2 * FRAME
        assert after[0].start == gap.end
        for row in mine:
            assert ffprobe(row.path).frames > 0


async def test_camera_back_with_another_resolution_records_a_new_segment(tmp_path: Path) -> None:
    cam = SimCamera(size="640x360")
    cam.start()
    try:
        async with running_vigil(_config(tmp_path, {"cam": cam.url()}), tmp_path) as vigil:
            closed = ClosedSegments(vigil)
            await until(lambda: closed.at_least(["cam"], 1), timeout=60)
            cam.stop()
            cam.start(size="320x240")
            await until(lambda: _state(vigil, "cam") is StreamState.STREAMING, timeout=60)
            await until(lambda: closed.at_least(["cam"], 3), timeout=60)
    finally:
        cam.stop()
    segments, _gaps = _rows(tmp_path)
    sizes = [(ffprobe(r.path).width, ffprobe(r.path).height) for r in
             sorted(segments, key=lambda r: r.start)]  # fmt: skip
    assert sizes[0] == (640, 360)
    assert sizes[-1] == (320, 240)
    assert set(sizes) == {(640, 360), (320, 240)}
    for row in segments:
        assert (row.width, row.height) == (ffprobe(row.path).width, ffprobe(row.path).height)


async def test_cut_network_link_is_detected_by_the_watchdog_and_healed(tmp_path: Path) -> None:
    with network_namespace() as link:
        cam = SimCamera(host=link.ns_address, netns=link.name)
        cam.start()
        try:
            config = _config(tmp_path, {"far": cam.url()}, "ingest: {no_data_timeout_s: 3}\n")
            async with running_vigil(config, tmp_path) as vigil:
                closed = ClosedSegments(vigil)
                await until(lambda: closed.at_least(["far"], 1), timeout=60)
                link.down()  # no FIN, no RST: packets just stop
                await until(lambda: _state(vigil, "far") in
                            (StreamState.STALLED, StreamState.RECONNECTING),
                            timeout=30)  # fmt: skip
                assert vigil.streams is not None
                status = vigil.streams.status("far")
                assert status is not None
                link.up()
                await until(lambda: _state(vigil, "far") is StreamState.STREAMING, timeout=90)
                await until(lambda: closed.at_least(["far"], 3), timeout=60)
        finally:
            cam.stop()
    _segments, gaps = _rows(tmp_path)
    [gap] = [g for g in gaps if g.stream == "far"]
    assert gap.reason.startswith("no video for 3 s")


async def test_no_keyframe_and_unauthorized_cameras_fail_clearly_others_unaffected(
    tmp_path: Path,
) -> None:
    with (
        camera(cameras=2) as good,
        camera(gop=2000, extra=("--no-keyframe-on-join",)) as mute,
        camera(extra=("--auth", "admin:right")) as locked,
    ):
        config = _config(tmp_path, {
            "good1": good.url(1),
            "mute": mute.url(),
            "locked": locked.url(userinfo="admin:wrong"),
            "good2": good.url(2),
        })  # fmt: skip
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.streams is not None
            closed = ClosedSegments(vigil)

            def settled() -> bool:
                assert vigil.streams is not None
                mute_status = vigil.streams.status("mute")
                return (
                    _state(vigil, "locked") is StreamState.FAILED
                    and mute_status is not None
                    and "no keyframe" in mute_status.reason
                )

            await until(settled, timeout=60)
            await until(lambda: closed.at_least(["good1", "good2"], 5), timeout=60)
            locked_status = vigil.streams.status("locked")
            assert locked_status is not None
            assert "401" in locked_status.reason and "wrong" not in locked_status.reason
            assert _state(vigil, "good1") is _state(vigil, "good2") is StreamState.STREAMING
    segments, gaps = _rows(tmp_path)
    assert not [g for g in gaps if g.stream.startswith("good")]
    for name in ("good1", "good2"):
        _assert_contiguous([r for r in segments if r.stream == name])
    assert not [r for r in segments if r.stream in ("mute", "locked")]


async def test_flapping_camera_never_disturbs_the_good_ones(tmp_path: Path) -> None:
    with camera(cameras=3) as good:
        bad = SimCamera()
        bad.start()
        try:
            streams = {f"good{i}": good.url(i) for i in (1, 2, 3)} | {"bad": bad.url()}
            async with running_vigil(_config(tmp_path, streams), tmp_path) as vigil:
                assert vigil.streams is not None
                closed = ClosedSegments(vigil)
                names = ["good1", "good2", "good3"]
                await until(lambda: closed.at_least(names, 1), timeout=60)
                # 30 s of flapping every 2 s: fifteen times the bad camera comes and goes.
                with flapping(bad, period=2.0):
                    await asyncio.sleep(30)
                await until(lambda: closed.at_least(names, 8), timeout=60)
                bad_status = vigil.streams.status("bad")
                assert bad_status is not None and bad_status.transitions >= 4
        finally:
            bad.stop()
    segments, gaps = _rows(tmp_path)
    assert not [g for g in gaps if g.stream.startswith("good")]
    for name in ("good1", "good2", "good3"):
        mine = [r for r in segments if r.stream == name]
        assert len(mine) >= 8
        _assert_contiguous(mine)
