"""Every kind of source records: test patterns, looped files (H.264 and other codecs), UDP RTSP,
and a missing V4L2 device fails with a readable reason. Branches attach and detach live."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.support.media import ffprobe, segment_files, simulator
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration

SHARED_CLIP = Path(__file__).resolve().parents[3] / "shared" / "media" / "vtest.avi"


def _h264_clip(path: Path, seconds: int = 3) -> Path:
    subprocess.run(
        ["gst-launch-1.0", "-q", "-e", "videotestsrc", f"num-buffers={seconds * 25}",
         "pattern=ball", "!", "video/x-raw,width=320,height=240,framerate=25/1", "!",
         "x264enc", "key-int-max=25", "!", "h264parse", "!", "mp4mux", "!",
         "filesink", f"location={path}"],
        check=True, timeout=60,
    )  # fmt: skip
    return path


async def _record(tmp_path: Path, streams: str, names: list[str], segments: int) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 2}}\nstreams:\n{streams}"
    )
    async with running_vigil(config, tmp_path) as vigil:
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(names, segments), timeout=90,
                    message=str(closed.poll()))  # fmt: skip


async def test_test_pattern_sources_record_h264_and_h265(tmp_path: Path) -> None:
    streams = (
        '  - {name: pat264, source: "test://ball?size=320x240&fps=25&bitrate=300"}\n'
        '  - {name: pat265, source: "test://smpte?codec=h265&size=320x240&fps=25"}\n'
    )
    await _record(tmp_path, streams, ["pat264", "pat265"], 2)
    root = tmp_path / "data" / "recordings"
    assert {ffprobe(p).codec for p in segment_files(root / "pat264")} == {"h264"}
    assert {ffprobe(p).codec for p in segment_files(root / "pat265")} == {"hevc"}


async def test_looped_file_plays_on_past_its_end(tmp_path: Path) -> None:
    clip = _h264_clip(tmp_path / "clip.mp4", seconds=3)
    streams = f'  - {{name: loop, source: "file://{clip}"}}\n'
    # 3 segments of ≥ 2 s from a 3 s clip: the file has looped at least once.
    await _record(tmp_path, streams, ["loop"], 3)
    files = segment_files(tmp_path / "data" / "recordings" / "loop")
    total = sum(ffprobe(p).frames for p in files) / 25
    assert total > 6.0
    assert all(ffprobe(p).width == 320 for p in files)


@pytest.mark.skipif(not SHARED_CLIP.exists(), reason="shared test footage not present")
async def test_file_in_another_codec_is_encoded_once_to_h264(tmp_path: Path) -> None:
    streams = f'  - {{name: walkway, source: "file://{SHARED_CLIP}"}}\n'
    await _record(tmp_path, streams, ["walkway"], 2)
    probe = ffprobe(segment_files(tmp_path / "data" / "recordings" / "walkway")[0])
    assert (probe.codec, probe.width, probe.height) == ("h264", 768, 576)


async def test_rtsp_over_udp_records(tmp_path: Path) -> None:
    with simulator(cameras=1, gop=25) as (port, _process):
        streams = f'  - {{name: udp, source: "rtsp://127.0.0.1:{port}/cam1", transport: udp}}\n'
        await _record(tmp_path, streams, ["udp"], 2)
    files = segment_files(tmp_path / "data" / "recordings" / "udp")
    assert files and all(ffprobe(p).frames > 0 for p in files)


async def test_missing_v4l2_device_fails_readably(tmp_path: Path) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\n"
        "streams:\n  - {name: webcam, source: 'v4l2:///dev/video-does-not-exist'}\n"
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.streams is not None

        def failed() -> bool:
            assert vigil.streams is not None
            status = vigil.streams.status("webcam")
            return status is not None and status.state is StreamState.RECONNECTING

        await until(failed, timeout=30)
        status = vigil.streams.status("webcam")
        assert status is not None and "video-does-not-exist" in status.reason


async def test_recording_branch_detaches_and_reattaches_while_streaming(tmp_path: Path) -> None:
    from vigil.config import parse_source
    from vigil.media.ingest import IngestPipeline
    from vigil.media.mainloop import GLibLoopThread
    from vigil.media.messages import (
        FirstFrame,
        MediaMessage,
        SegmentFileClosed,
        SegmentFileOpened,
    )
    from vigil.media.recorder import RecordingSpec
    from vigil.recording.paths import claim_segment_path

    glib = GLibLoopThread()
    glib.start()
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[MediaMessage] = asyncio.Queue()
    root = tmp_path / "rec"
    spec = RecordingSpec(2, 0.5, lambda start: str(claim_segment_path(root, "live", start)))
    pipeline = IngestPipeline(
        "live", parse_source("test://ball?size=320x240&fps=25"),
        lambda m: loop.call_soon_threadsafe(messages.put_nowait, m),
    )  # fmt: skip

    async def wait_for(kind: type, count: int = 1) -> None:
        seen = 0
        async with asyncio.timeout(60):
            while seen < count:
                if isinstance(await messages.get(), kind):
                    seen += 1

    try:
        await asyncio.to_thread(pipeline.start)
        await wait_for(FirstFrame)
        await asyncio.to_thread(pipeline.attach_recording, spec)
        await wait_for(SegmentFileClosed, 2)
        await asyncio.to_thread(pipeline.detach_recording)
        detached = set(segment_files(root))
        await asyncio.sleep(1.5)  # the stream runs on unrecorded; nothing new is written
        assert set(segment_files(root)) == detached
        await asyncio.to_thread(pipeline.attach_recording, spec)
        await wait_for(SegmentFileOpened, 1)
    finally:
        await asyncio.to_thread(pipeline.stop)
        glib.stop()
    files = segment_files(root)
    assert len(files) >= 4
    assert set(files) > detached
    for path in files:
        assert ffprobe(path).frames > 0, path
