"""The detection branch: what it decodes (keyframes or every frame), how it follows a camera's
keyframe interval, the size frames come out at, and the decoder it picks without a GPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import numpy as np
import pytest

from vigil.media import gst
from vigil.media.detect import DetectBranch, pick_decoder, working_size
from vigil.media.gst import Gst
from vigil.media.relay import Outlet, Relay

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, scope="module")
def _gst() -> None:
    gst.init()


class Frames:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, image: np.ndarray, _at: datetime) -> None:
        assert image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
        with self.lock:
            self.shapes.append(image.shape)

    def count(self) -> int:
        with self.lock:
            return len(self.shapes)


@contextmanager
def camera(gop: int, size: str = "1280x720") -> Iterator[Relay]:
    """A live H.264 producer at 25 fps with a keyframe every `gop` frames, on a relay."""
    width, height = size.split("x")
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,width={width},height={height},framerate=25/1,format=I420 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! "
        "h264parse ! tee name=t allow-not-linked=true"
    )
    pipeline.set_state(Gst.State.PLAYING)
    relay = Relay("cam")
    outlet = Outlet(pipeline, pipeline.get_by_name("t"))
    relay.bind(outlet)
    try:
        yield relay
    finally:
        relay.unbind(outlet)
        pipeline.set_state(Gst.State.NULL)


def run_branch(relay: Relay, *, fps: float, decode: str, until_frames: int) -> DetectBranch:
    frames = Frames()
    errors: list[str] = []
    branch = DetectBranch("cam", relay, fps=fps, decode=decode, decoder="auto",
                          frame_width=640, on_frame=frames, on_error=errors.append)  # fmt: skip
    branch.start()
    try:
        deadline = time.monotonic() + 60
        while frames.count() < until_frames and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        branch.stop()
    assert not errors, errors
    assert frames.count() >= until_frames, f"only {frames.count()} frames"
    assert set(frames.shapes) == {(360, 640, 3)}  # 1280x720 scaled to 640 wide, aspect kept
    return branch


def test_a_rate_within_the_keyframe_rate_decodes_keyframes_only() -> None:
    with camera(gop=25) as relay:  # a keyframe a second
        branch = run_branch(relay, fps=1, decode="auto", until_frames=3)
    assert branch.mode == "keyframes"
    assert branch.keyframe_interval_s == pytest.approx(1.0, abs=0.05)
    assert branch.decoder == "avdec_h264"  # no NVIDIA decoder on this machine


def test_a_rate_above_the_keyframe_rate_decodes_every_frame() -> None:
    with camera(gop=25) as relay:
        branch = run_branch(relay, fps=5, decode="auto", until_frames=12)
    assert branch.mode == "all"


def test_a_running_branch_takes_a_new_rate_and_mode() -> None:
    frames = Frames()
    with camera(gop=25) as relay:
        branch = DetectBranch("cam", relay, fps=1, decode="auto", decoder="auto",
                              frame_width=640, on_frame=frames, on_error=print)  # fmt: skip
        branch.start()
        try:
            deadline = time.monotonic() + 60
            while frames.count() < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert branch.mode == "keyframes"
            branch.configure(fps=5, decode="all")
            assert branch.mode == "all"
            before = frames.count()
            while frames.count() < before + 10 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            branch.stop()
    assert frames.count() >= before + 10, "no frames after the change"


def test_forced_modes_are_kept() -> None:
    with camera(gop=10) as relay:  # 2.5 keyframes a second
        keyframes = run_branch(relay, fps=5, decode="keyframes", until_frames=5)
        every = run_branch(relay, fps=1, decode="all", until_frames=3)
    assert keyframes.mode == "keyframes" and every.mode == "all"


def test_without_nvidia_decoders_software_is_used_and_asking_for_nvidia_warns() -> None:
    auto = pick_decoder("video/x-h264", "auto")
    assert (auto.element, auto.hardware, auto.warning) == ("avdec_h264", False, None)
    asked = pick_decoder("video/x-h265", "nvidia")
    assert asked.element == "avdec_h265" and not asked.hardware
    assert asked.warning is not None and "nvh265dec is not available" in asked.warning
    assert pick_decoder("video/x-h264", "software").element == "avdec_h264"
    assert pick_decoder("video/x-vp8", "auto").element is None


@pytest.mark.parametrize(
    ("source", "limit", "expected"),
    [((1920, 1080), 640, (640, 360)), ((768, 576), 640, (640, 480)),
     ((320, 240), 640, (320, 240)), ((0, 0), 640, (640, 360))],
)  # fmt: skip
def test_working_size_keeps_the_aspect_and_never_upscales(
    source: tuple[int, int], limit: int, expected: tuple[int, int]
) -> None:
    assert working_size(*source, limit) == expected
