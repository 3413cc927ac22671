"""The recording branch on a real pipeline: what it keeps in memory across segment rollovers."""

from __future__ import annotations

import itertools
import queue
import time
from pathlib import Path

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from tests.support.finalized import FinalizeWatch  # noqa: E402
from vigil.media import gst  # noqa: E402
from vigil.media.mainloop import GLibLoopThread  # noqa: E402
from vigil.media.messages import MediaMessage, SegmentFileClosed  # noqa: E402
from vigil.media.recorder import RecordingBranch, RecordingSpec  # noqa: E402

pytestmark = pytest.mark.integration

SOURCE = (
    "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! h264parse name=parse"
)
SEGMENTS = 5


def test_each_finished_segment_frees_its_muxer_and_filesink(tmp_path: Path) -> None:
    gst.init()
    glib = GLibLoopThread()  # the branch retires finished files on the GLib thread
    glib.start()
    closed: queue.Queue[str] = queue.Queue()

    def post(message: MediaMessage) -> None:
        if isinstance(message, SegmentFileClosed):
            closed.put(message.location)

    numbers = itertools.count()
    spec = RecordingSpec(1, 0.5, lambda _start: str(tmp_path / f"{next(numbers)}.mp4"))
    pipeline = Gst.parse_launch(SOURCE)
    assert isinstance(pipeline, Gst.Pipeline)
    bus = pipeline.get_bus()
    bus.add_signal_watch()  # as in Vigil: messages left queued would hold their elements
    branch = RecordingBranch("cam", spec, post)
    watch = FinalizeWatch()
    # Every element the branch adds after it is built is one segment's write guard, muxer or
    # filesink.
    branch.bin.connect("element-added", lambda _bin, element: watch.watch(element))
    pipeline.add(branch.bin)
    assert pipeline.get_by_name("parse").link(branch.bin)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        deadline = time.monotonic() + 60
        for _ in range(SEGMENTS):
            closed.get(timeout=max(0.1, deadline - time.monotonic()))
        # Only the file being written keeps its guard, muxer and filesink.
        alive = watch.wait(lambda paths: len(paths) <= 3)
        assert len(alive) <= 3, f"{SEGMENTS} segments closed, still alive: {alive}"
    finally:
        pipeline.set_state(Gst.State.NULL)
        bus.remove_signal_watch()
        glib.stop()
