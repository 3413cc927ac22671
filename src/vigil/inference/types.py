"""The values detection passes around: a frame to look at, a box, a detection.

Boxes are in normalised coordinates (0..1 of the frame's width and height), so zones, filters,
the tracker and the API never care at which size a frame was decoded or a model ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]  # H x W x 3, BGR (OpenCV's order), contiguous


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame of a stream, at the detector's working size."""

    stream: str
    image: Image
    at: datetime  # wall clock (UTC) when the frame was taken off the pipeline


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box, normalised: 0 <= x1 <= x2 <= 1, 0 <= y1 <= y2 <= 1."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def clipped(cls, x1: float, y1: float, x2: float, y2: float) -> Box:
        """A box from possibly out-of-frame corners, clipped to the frame."""
        x1, x2 = min(max(x1, 0.0), 1.0), min(max(x2, 0.0), 1.0)
        y1, y2 = min(max(y1, 0.0), 1.0), min(max(y2, 0.0), 1.0)
        return cls(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    @property
    def foot(self) -> tuple[float, float]:
        """The bottom centre: where a person or vehicle stands, the point zones test."""
        return ((self.x1 + self.x2) / 2, self.y2)

    def iou(self, other: Box) -> float:
        """Intersection over union (0 when apart, 1 when equal)."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        if w <= 0 or h <= 0:
            return 0.0
        inter = w * h
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Detection:
    """What a model saw: a labelled box with its confidence (0..1)."""

    label: str
    score: float
    box: Box
