"""Per-stream detection filters: wanted labels, minimum score and size, include/exclude zones.

Zones are polygons in normalised coordinates (0..1 of the frame), tested against a detection's
foot point (the bottom centre of its box): where a person or a car stands, not where its head is,
decides whether it is on the drive or on the pavement.

Point-in-polygon is a dozen lines of pure Python rather than a library call: shapely would add
GEOS for one test; `cv2.pointPolygonTest` wants a float32 contour array per polygon, and float32
rounding makes "exactly on the edge" depend on the coordinates, whereas zones drawn in the UI put
points on shared edges on purpose. A zone has a handful of vertices and a frame a handful of
detections, so the cost is negligible either way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from vigil.inference.types import Detection

Point = tuple[float, float]
ZoneMode = Literal["include", "exclude"]

# Distance under which a point counts as on an edge (normalised units: far below one pixel).
_EDGE_TOLERANCE = 1e-9


def _on_segment(point: Point, a: Point, b: Point) -> bool:
    px, py = point
    ax, ay = a
    bx, by = b
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    length = max(abs(bx - ax), abs(by - ay))
    if abs(cross) > _EDGE_TOLERANCE * max(length, 1.0):
        return False
    return (
        min(ax, bx) - _EDGE_TOLERANCE <= px <= max(ax, bx) + _EDGE_TOLERANCE
        and min(ay, by) - _EDGE_TOLERANCE <= py <= max(ay, by) + _EDGE_TOLERANCE
    )


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Whether `point` is inside `polygon` (any simple polygon, convex or not); on an edge or a
    vertex counts as inside. Ray casting: a ray to the right crosses the boundary an odd number
    of times from inside."""
    count = len(polygon)
    for i in range(count):
        if _on_segment(point, polygon[i], polygon[(i + 1) % count]):
            return True
    px, py = point
    inside = False
    for i in range(count):
        ax, ay = polygon[i]
        bx, by = polygon[(i + 1) % count]
        # Half-open in y, so a ray through a vertex counts the two edges meeting there once.
        if (ay > py) != (by > py):
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
            if px < x_cross:
                inside = not inside
    return inside


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon (normalised points, at least 3) that includes or excludes detections."""

    name: str
    polygon: Sequence[Point]
    mode: ZoneMode = "include"

    def __post_init__(self) -> None:
        points = tuple((float(x), float(y)) for x, y in self.polygon)
        if len(points) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs at least 3 points")
        if any(not (0.0 <= v <= 1.0) for point in points for v in point):
            raise ValueError(f"zone {self.name!r}: points are normalised (0..1)")
        if self.mode not in ("include", "exclude"):
            raise ValueError(f"zone {self.name!r}: mode is 'include' or 'exclude'")
        object.__setattr__(self, "polygon", points)

    def contains(self, point: Point) -> bool:
        return point_in_polygon(point, self.polygon)


@dataclass(frozen=True, slots=True)
class DetectionFilter:
    """Which detections of a stream matter.

    `labels` empty means every label; `min_area` is a fraction of the frame's area. With at least
    one include zone, a detection's foot must be in one of them; in any exclude zone, it is
    dropped (exclude wins over include).
    """

    labels: Collection[str] = frozenset()
    min_score: float = 0.0
    min_area: float = 0.0
    zones: Sequence[Zone] = ()
    _include: tuple[Zone, ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[Zone, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", frozenset(self.labels))
        object.__setattr__(self, "zones", tuple(self.zones))
        object.__setattr__(self, "_include", tuple(z for z in self.zones if z.mode == "include"))
        object.__setattr__(self, "_exclude", tuple(z for z in self.zones if z.mode == "exclude"))

    def apply(self, detections: Sequence[Detection]) -> list[tuple[Detection, tuple[str, ...]]]:
        """The detections to keep, in order, each with the names of the include zones its foot
        is in (empty when the stream has no include zones)."""
        kept: list[tuple[Detection, tuple[str, ...]]] = []
        for detection in detections:
            if self.labels and detection.label not in self.labels:
                continue
            if detection.score < self.min_score or detection.box.area < self.min_area:
                continue
            foot = detection.box.foot
            if any(zone.contains(foot) for zone in self._exclude):
                continue
            names = tuple(zone.name for zone in self._include if zone.contains(foot))
            if self._include and not names:
                continue
            kept.append((detection, names))
        return kept
