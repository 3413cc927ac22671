"""Each rung of the healing ladder, with a fault injected at that rung into real pipelines: the
stream heals or reaches `failed` with its reason, says so in events, the log and the metrics,
and is never reported `streaming` for long while its recording writes nothing."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gi
import pytest
from prometheus_client import REGISTRY

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from tests.support.service import ClosedSegments, running_vigil, until  # noqa: E402
from vigil.app import Vigil  # noqa: E402
from vigil.events import (  # noqa: E402
    Event,
    GapClosed,
    SegmentOpened,
    StreamHealing,
    StreamStateChanged,
)
from vigil.media import sources  # noqa: E402
from vigil.media.messages import SegmentFileOpened  # noqa: E402
from vigil.media.recorder import RecordingBranch  # noqa: E402
from vigil.store.db import Database  # noqa: E402
from vigil.store.events import EventQuery, EventStore  # noqa: E402
from vigil.store.recordings import GapStore  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short H.264 file with a keyframe a second, played in a loop as a camera."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-t", "4", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _config(tmp_path: Path, clip: Path, names: tuple[str, ...] = ("cam", "other")) -> str:
    streams = "".join(f'  - {{name: {name}, source: "file://{clip}"}}\n' for name in names)
    return (
        f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 2}}\n"
        f"ingest: {{reconnect_max_delay_s: 600}}\nstreams:\n{streams}"
    )


class Events:
    """Every event of a stream, in order, from a bus subscription."""

    def __init__(self, vigil: Vigil, stream: str) -> None:
        assert vigil.bus is not None
        self._sub = vigil.bus.subscribe(lambda e: getattr(e, "stream", None) == stream)
        self.seen: list[Event] = []

    def poll(self) -> list[Event]:
        while (event := self._sub.get_nowait()) is not None:
            self.seen.append(event)
        return self.seen

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.poll() if isinstance(event, kind)]


def _heals(stream: str, step: str) -> float:
    value = REGISTRY.get_sample_value("vigil_stream_heals_total", {"stream": stream, "step": step})
    return value or 0.0


@pytest.fixture
def failing_pad_added(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """A file source that links its video (a good start) and then raises in its `pad-added`
    handler, for the first `times` sources built (all of them with a negative count)."""
    original = sources._ParsebinSource._on_pad_added
    remaining = {"count": 0}

    def broken(self: sources._ParsebinSource, element: Gst.Element, pad: Gst.Pad) -> None:
        original(self, element, pad)
        if remaining["count"] != 0 and self.stream == "cam":
            remaining["count"] -= 1
            raise RuntimeError("the demuxer's pad handler broke")

    monkeypatch.setattr(sources._ParsebinSource, "_on_pad_added", broken)

    def arm(times: int) -> None:
        remaining["count"] = times

    yield arm


async def test_a_source_that_keeps_failing_climbs_to_failed_with_its_reason(
    tmp_path: Path, clip: Path, failing_pad_added: Callable[[int], None],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    failing_pad_added(-1)
    before = {step: _heals("cam", step) for step in ("rebuild_source", "rebuild_pipeline")}
    async with running_vigil(_config(tmp_path, clip), tmp_path) as vigil:
        closed = ClosedSegments(vigil)
        assert vigil.streams is not None

        def failed() -> bool:
            status = vigil.streams.status("cam")  # type: ignore[union-attr]
            return status is not None and status.state.value == "failed"

        await until(failed, 60, "the stream never reached failed")
        status = vigil.streams.status("cam")
        assert status is not None
        assert "exception in demux pad-added" in status.reason
        assert "the demuxer's pad handler broke" in status.reason
        assert "retrying every 600 s" in status.reason
        # The other stream never noticed.
        await until(lambda: closed.at_least(["other"], 2), 30, "the other stream stopped")
        other = vigil.streams.status("other")
        assert other is not None and other.state.value == "streaming"
    # The whole climb, as the event history has it.
    with Database(tmp_path / "data" / "vigil.db") as db:
        stored = EventStore(db).list_events(EventQuery(types=("stream.healing",), streams=("cam",)))
    steps = [(r.data["step"], r.data["attempt"]) for r in reversed(stored)]
    assert steps == [("rebuild_source", 1), ("rebuild_pipeline", 2), ("failed", 3)]
    assert _heals("cam", "rebuild_source") == before["rebuild_source"] + 1
    assert _heals("cam", "rebuild_pipeline") == before["rebuild_pipeline"] + 1
    assert _heals("cam", "failed") >= 1
    # The traceback is in the log once per attempt, not once per buffer; nothing on stderr.
    tracebacks = [r for r in caplog.records if r.exc_info and "pad-added" in r.getMessage()]
    assert 1 <= len(tracebacks) <= 3, [r.getMessage() for r in tracebacks]
    assert all(r.levelno == logging.ERROR for r in tracebacks)


async def test_a_source_fault_that_passes_is_healed_by_rebuilding_the_source(
    tmp_path: Path, clip: Path, failing_pad_added: Callable[[int], None]
) -> None:
    failing_pad_added(1)
    async with running_vigil(_config(tmp_path, clip, ("cam",)), tmp_path) as vigil:
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["cam"], 2), 60, "no recording after the heal")
        assert vigil.streams is not None
        status = vigil.streams.status("cam")
        assert status is not None and status.state.value == "streaming"
    with Database(tmp_path / "data" / "vigil.db") as db:
        stored = EventStore(db).list_events(EventQuery(types=("stream.healing",), streams=("cam",)))
    assert [r.data["step"] for r in stored] == ["rebuild_source"]


@pytest.fixture
def stalling_recorder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first recording branch of `cam` stops writing once its first segment is open: a
    probe drops every buffer at its input, while video keeps reaching the tee."""
    original = RecordingBranch.__init__
    stalled: list[str] = []

    def init(self: RecordingBranch, stream: str, *args: Any, **kwargs: Any) -> None:
        original(self, stream, *args, **kwargs)
        if stream != "cam" or stalled:
            return
        stalled.append(stream)
        state = {"opened": 0}
        post = self._post

        def counting(message: object) -> None:
            if isinstance(message, SegmentFileOpened):
                state["opened"] += 1
            post(message)  # type: ignore[arg-type]

        self._post = counting

        def drop(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            return Gst.PadProbeReturn.DROP if state["opened"] >= 2 else Gst.PadProbeReturn.OK

        self.sink_pad.add_probe(Gst.PadProbeType.BUFFER, drop)

    monkeypatch.setattr(RecordingBranch, "__init__", init)
    return stalled


async def test_a_recording_that_stops_writing_is_a_stall_healed_by_a_new_pipeline(
    tmp_path: Path, clip: Path, stalling_recorder: list[str]
) -> None:
    async with running_vigil(_config(tmp_path, clip, ("cam",)), tmp_path) as vigil:
        events = Events(vigil, "cam")
        await until(lambda: bool(events.of(StreamHealing)), 60, "the stall was never noticed")
        heal = events.of(StreamHealing)[0]
        assert heal.step == "rebuild_pipeline"
        assert heal.reason.startswith("recording_stalled")
        healed_at = heal.at

        def recording_again() -> bool:
            return any(e.at > healed_at for e in events.of(SegmentOpened))

        await until(recording_again, 60, "no recording after the new pipeline")
        assert stalling_recorder == ["cam"]
        # Never `streaming` for long while nothing was written: the last segment opened before
        # the stall and the heal are at most the detection time (plus a segment) apart.
        opened = [e.at for e in events.of(SegmentOpened) if e.at < healed_at]
        assert opened
        assert (healed_at - opened[-1]).total_seconds() < 2 + 10 + 5
        await until(lambda: bool(events.of(GapClosed)), 30, "the stall left no gap")
    with Database(tmp_path / "data" / "vigil.db") as db:
        gaps = GapStore(db).list_gaps(stream="cam")
    assert any(g.reason.startswith("recording_stalled") for g in gaps), gaps
    states = [e.new for e in events.of(StreamStateChanged)]
    assert states[-3:] == ["reconnecting", "streaming", "stopped"], states
