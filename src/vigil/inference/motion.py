"""The motion gate: a cheap per-stream test of whether anything moved, to skip detection on still
scenes.

Frigate's approach, simplified: grey, downscale to a small fixed width, blur away sensor noise,
compare with a running-average background, count the pixels that differ by more than a threshold.
One `MotionGate` per stream; not thread-safe (the scheduler never runs one stream's frames
concurrently).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vigil.inference.types import Image

# How fast the background follows the scene: high enough that a parked car or a change of light
# is absorbed within a few seconds at detect rates (~5 fps), low enough that a person walking
# through still differs from it.
_BACKGROUND_ALPHA = 0.2
_BLUR_KERNEL = (5, 5)


@dataclass(frozen=True, slots=True)
class Motion:
    """The gate's verdict on one frame: `changed` is the fraction of pixels (0..1) over the
    threshold."""

    moving: bool
    changed: float


class MotionGate:
    """Whether a stream's picture moved since the recent past.

    `threshold` is the grey-level difference (0..255) that counts a pixel as changed; `min_area`
    the fraction of the picture that must change to call it motion; `width` the working width
    the picture is shrunk to (smaller is cheaper and ignores finer noise).
    """

    def __init__(self, threshold: int = 25, min_area: float = 0.002, width: int = 160) -> None:
        if not 0 < threshold < 256:
            raise ValueError("threshold is a grey level between 1 and 255")
        if not 0.0 <= min_area <= 1.0:
            raise ValueError("min_area is a fraction of the picture (0..1)")
        if width < 8:
            raise ValueError("width must be at least 8 pixels")
        self._threshold = threshold
        self._min_area = min_area
        self._width = width
        self._background: npt.NDArray[np.float32] | None = None
        self._source_shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        """Forget the background (e.g. after a reconnect): the next frame counts as moving."""
        self._background = None
        self._source_shape = None

    def update(self, image: Image) -> Motion:
        """Compare `image` (H x W x 3 BGR) with the background, then fold it into the background.

        The first frame, and the first after the frame size changed, count as moving: there is
        nothing to compare them with, and missing a real event costs more than one detection run.
        """
        if image.shape != self._source_shape:
            self.reset()
            self._source_shape = image.shape
        small = self._prepare(image)
        if self._background is None:
            self._background = small.astype(np.float32)
            return Motion(moving=True, changed=1.0)
        background = cv2.convertScaleAbs(self._background)
        difference = cv2.absdiff(small, background)
        _, mask = cv2.threshold(difference, self._threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.countNonZero(mask) / mask.size
        cv2.accumulateWeighted(small, self._background, _BACKGROUND_ALPHA)
        return Motion(moving=changed >= self._min_area, changed=changed)

    def _prepare(self, image: Image) -> npt.NDArray[np.uint8]:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = grey.shape[:2]
        if width > self._width:
            new_height = max(1, round(height * self._width / width))
            grey = cv2.resize(grey, (self._width, new_height), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(grey, _BLUR_KERNEL, 0), dtype=np.uint8)
