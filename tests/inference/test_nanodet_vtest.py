"""The default model on real footage: frame 100 of vtest.avi, as decoded and at the 640x480
Vigil's pipeline delivers."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

from tests.support.shared import nanodet_model, vtest_avi
from vigil.inference.backend import Detector
from vigil.inference.labels import builtin_labels
from vigil.inference.types import Detection

WIDTH, HEIGHT = 768, 576


def vtest_frame(number: int) -> np.ndarray:
    """Frame `number` of vtest.avi as 768x576 BGR, decoded by ffmpeg."""
    raw = subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-i", str(vtest_avi()),
            "-vf", f"select=eq(n\\,{number})", "-frames:v", "1",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-",
        ],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    assert len(raw) == WIDTH * HEIGHT * 3, f"ffmpeg gave {len(raw)} bytes for frame {number}"
    return np.frombuffer(raw, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3).copy()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(nanodet_model(), family="nanodet", labels=builtin_labels("coco-80"))


def persons(detections: list[Detection]) -> list[Detection]:
    return [d for d in detections if d.label == "person" and d.score >= 0.35]


@pytest.mark.parametrize("size", [(WIDTH, HEIGHT), (640, 480)], ids=["768x576", "640x480"])
def test_frame_100_has_the_pedestrians(detector: Detector, size: tuple[int, int]) -> None:
    frame = vtest_frame(100)
    if size != (WIDTH, HEIGHT):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    (detections,) = detector.detect([frame], 0.35)
    assert len(persons(detections)) >= 6, detections
    for detection in detections:
        box = detection.box
        assert 0.0 <= box.x1 < box.x2 <= 1.0, detection
        assert 0.0 <= box.y1 < box.y2 <= 1.0, detection
