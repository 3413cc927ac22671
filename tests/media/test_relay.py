"""The relay on real pipelines: a consumer in another pipeline receives a stream's video with
caps from the moment it connects, keeps its pipeline across a replaced producer, and a
published stream's ingest pipeline records what a publisher's pipeline offers."""

from __future__ import annotations

import itertools
import queue
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.finalized import FinalizeWatch, element_paths
from vigil.config import PublishSource, parse_source
from vigil.media import gst
from vigil.media.gst import Gst
from vigil.media.ingest import IngestPipeline
from vigil.media.mainloop import GLibLoopThread
from vigil.media.messages import FirstFrame, MediaMessage, SegmentFileClosed
from vigil.media.recorder import RecordingSpec
from vigil.media.relay import Outlet, RelayHub, align
from vigil.media.sources import NoPublisher

pytestmark = pytest.mark.integration

SOURCE = "test://ball?size=160x120&fps=25&gop=10"


@pytest.fixture(scope="module")
def glib() -> Iterator[GLibLoopThread]:
    gst.init()
    loop = GLibLoopThread()
    loop.start()
    yield loop
    loop.stop()


class Consumer:
    """A viewer's pipeline: proxysrc ! appsink, counting what arrives (in the test, not C)."""

    def __init__(self) -> None:
        self.pipeline = Gst.parse_launch(
            "proxysrc name=src ! appsink name=out sync=false emit-signals=true max-buffers=1 "
            "drop=true"
        )
        self.proxysrc = self.pipeline.get_by_name("src")
        self.frames = 0
        self.caps: list[str] = []
        self.pipeline.get_by_name("out").connect("new-sample", self._on_sample)

    def _on_sample(self, sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        caps = sample.get_caps().to_string() if sample is not None else ""
        if caps and (not self.caps or self.caps[-1] != caps):
            self.caps.append(caps)
        self.frames += 1
        return Gst.FlowReturn.OK

    def wait_frames(self, more_than: int, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.frames <= more_than and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.frames


def _wait_for(messages: queue.Queue[MediaMessage], kind: type, timeout: float = 30) -> MediaMessage:
    deadline = time.monotonic() + timeout
    while True:
        message = messages.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(message, kind):
            return message


def _ingest(
    name: str, url: str, hub: RelayHub, post: Callable[[MediaMessage], None]
) -> IngestPipeline:
    pipeline = IngestPipeline(name, parse_source(url), post, relays=hub)
    pipeline.start()
    hub.video(name).bind(pipeline.outlet)
    return pipeline


def test_consumer_gets_caps_and_frames_and_outlives_the_producer(glib: GLibLoopThread) -> None:
    hub = RelayHub()
    messages: queue.Queue[MediaMessage] = queue.Queue()
    first = _ingest("cam", SOURCE, hub, messages.put)
    consumer = Consumer()
    relay = hub.video("cam")
    try:
        _wait_for(messages, FirstFrame)
        align(consumer.pipeline, relay.producer)
        consumer.pipeline.set_state(Gst.State.PLAYING)
        assert relay.add(consumer.proxysrc)
        assert consumer.wait_frames(10) > 10, "no video reached the consumer"
        assert consumer.caps and consumer.caps[0].startswith("video/x-h264")
        assert first.outlet.consumers == 1

        # The stream's pipeline is replaced (a restart): the consumer stays, frames resume.
        relay.unbind(first.outlet)
        first.stop()
        assert first.outlet.consumers == 0
        second = _ingest("cam", "test://smpte?size=320x240&fps=25&gop=10", hub, messages.put)
        try:
            seen = consumer.frames
            assert consumer.wait_frames(seen + 10) > seen + 10, "frames did not resume"
            assert any("width=(int)320" in caps for caps in consumer.caps), consumer.caps
            relay.remove(consumer.proxysrc)
            assert second.outlet.consumers == 0
        finally:
            second.stop()
    finally:
        consumer.pipeline.set_state(Gst.State.NULL)


def test_published_stream_waits_for_then_records_its_publisher(
    glib: GLibLoopThread, tmp_path: Path
) -> None:
    hub = RelayHub()
    messages: queue.Queue[MediaMessage] = queue.Queue()
    with pytest.raises(NoPublisher, match="waiting for a publisher"):
        IngestPipeline("pub", PublishSource(), messages.put, relays=hub)

    publisher = Gst.parse_launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=25/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! h264parse "
        "! tee name=t allow-not-linked=true"
    )
    publisher.set_state(Gst.State.PLAYING)
    outlet = Outlet(publisher, publisher.get_by_name("t"))
    hub.publish("pub").bind(outlet)
    numbers = itertools.count()
    pipeline = IngestPipeline("pub", PublishSource(), messages.put, relays=hub)
    try:
        pipeline.attach_recording(
            RecordingSpec(2, 0.5, lambda _start: str(tmp_path / f"{next(numbers)}.mp4"))
        )
        pipeline.start()
        first = _wait_for(messages, FirstFrame)
        assert isinstance(first, FirstFrame) and (first.codec, first.width) == ("h264", 160)
        closed = _wait_for(messages, SegmentFileClosed)
        assert isinstance(closed, SegmentFileClosed)
    finally:
        hub.publish("pub").unbind(outlet)
        pipeline.stop()
        publisher.set_state(Gst.State.NULL)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,nb_read_frames", "-of", "csv=p=0", closed.location],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    codec, width, frames = probe.stdout.strip().split(",")
    assert (codec, width) == ("h264", "160") and int(frames) >= 25, probe.stdout


def test_viewers_coming_and_going_leave_nothing_in_the_stream_pipeline(
    glib: GLibLoopThread,
) -> None:
    """Each consumer's branch (queue, proxysink) is freed when it disconnects: a stream that
    has had ten viewers one after another holds no more than one that has had none."""
    hub = RelayHub()
    messages: queue.Queue[MediaMessage] = queue.Queue()
    ingest = _ingest("cam", SOURCE, hub, messages.put)
    relay = hub.video("cam")
    watch = FinalizeWatch()
    before = element_paths(ingest.pipeline)
    try:
        _wait_for(messages, FirstFrame)
        for _ in range(10):
            consumer = Consumer()
            align(consumer.pipeline, relay.producer)
            consumer.pipeline.set_state(Gst.State.PLAYING)
            relay.add(consumer.proxysrc)
            assert consumer.wait_frames(2) > 2
            branch = element_paths(ingest.pipeline) - before
            assert len(branch) == 2, branch  # queue and proxysink
            for path in branch:
                watch.watch(ingest.pipeline.get_by_name(path.rsplit(":", 1)[-1]))
            relay.remove(consumer.proxysrc)
            consumer.pipeline.set_state(Gst.State.NULL)
        assert element_paths(ingest.pipeline) == before
        assert watch.wait(lambda alive: not alive) == [], "branches left alive"
    finally:
        relay.unbind(ingest.outlet)
        ingest.stop()
