"""A stream's pipeline on real sources: nothing of a replaced source or a stopped pipeline
stays in memory (pad probes and signal handlers that point back at their owner must go)."""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.finalized import FinalizeWatch, element_paths
from tests.support.rtsp_server import gst_server
from vigil.config import parse_source
from vigil.config.sources import Transport
from vigil.media.ingest import IngestPipeline
from vigil.media.mainloop import GLibLoopThread
from vigil.media.messages import FirstFrame, MediaMessage, SegmentFileOpened
from vigil.media.recorder import RecordingSpec

pytestmark = pytest.mark.integration

CAMERA = (
    "( videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


@pytest.fixture(scope="module")
def camera_url() -> Iterator[str]:
    with gst_server({"/cam": CAMERA}) as server:
        yield server.url("/cam")


def _wait_for(messages: queue.Queue[MediaMessage], kind: type, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not isinstance(messages.get(timeout=max(0.1, deadline - time.monotonic())), kind):
        pass


@pytest.mark.parametrize("source", ["test pattern", "rtsp tcp", "rtsp udp"])
def test_replaced_source_and_stopped_pipeline_are_freed(
    source: str, camera_url: str, tmp_path: Path
) -> None:
    spec = {
        "test pattern": parse_source("test://ball?size=160x120&fps=25"),
        "rtsp tcp": parse_source(camera_url, Transport.TCP),  # Vigil's client + fdsrc
        "rtsp udp": parse_source(camera_url, Transport.UDP),  # rtspsrc
    }[source]
    glib = GLibLoopThread()
    glib.start()
    messages: queue.Queue[MediaMessage] = queue.Queue()
    numbers = itertools.count()
    recording = RecordingSpec(60, 0.5, lambda _start: str(tmp_path / f"{next(numbers)}.mp4"))
    watch = FinalizeWatch()
    pipeline = IngestPipeline("cam", spec, messages.put)
    stopped = False
    try:
        pipeline.attach_recording(recording)
        pipeline.start()
        _wait_for(messages, SegmentFileOpened)
        watch.watch_tree(pipeline.pipeline)

        # A reconnect: the old source (and the segment it cut) leave the pipeline and memory.
        pipeline.stop_source()
        pipeline.start_source()
        _wait_for(messages, FirstFrame)
        current = element_paths(pipeline.pipeline) | {pipeline.pipeline.get_path_string()}
        removed_but_alive = set(watch.wait(lambda alive: not set(alive) - current)) - current
        assert not removed_but_alive, f"removed from the pipeline but alive: {removed_but_alive}"

        watch.watch_tree(pipeline.pipeline)
        stopped = True
        pipeline.stop()
    finally:
        if not stopped:
            pipeline.stop()
        glib.stop()
    del pipeline
    alive = watch.wait(lambda alive: not alive)
    assert not alive, f"alive after the pipeline stopped: {alive}"
