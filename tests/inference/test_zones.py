"""Detection filters: labels, score, size, and include/exclude zones tested at the foot point."""

from __future__ import annotations

import pytest

from vigil.inference.types import Box, Detection
from vigil.inference.zones import DetectionFilter, Zone, point_in_polygon

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
# A "U": two arms joined at the bottom; the notch between the arms (x 0.4..0.6, y < 0.6) is outside.
U_SHAPE = [
    (0.1, 0.1),
    (0.4, 0.1),
    (0.4, 0.6),
    (0.6, 0.6),
    (0.6, 0.1),
    (0.9, 0.1),
    (0.9, 0.9),
    (0.1, 0.9),
]


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.5, 0.5), SQUARE, True),
        ((0.1, 0.5), SQUARE, False),
        ((0.9, 0.5), SQUARE, False),
        ((0.5, 0.1), SQUARE, False),
        # edges and vertices count as inside
        ((0.2, 0.5), SQUARE, True),
        ((0.8, 0.5), SQUARE, True),
        ((0.5, 0.2), SQUARE, True),
        ((0.5, 0.8), SQUARE, True),
        ((0.2, 0.2), SQUARE, True),
        ((0.8, 0.8), SQUARE, True),
        # concave: the arms and the base are inside, the notch is not
        ((0.25, 0.3), U_SHAPE, True),
        ((0.75, 0.3), U_SHAPE, True),
        ((0.5, 0.8), U_SHAPE, True),
        ((0.5, 0.3), U_SHAPE, False),
        ((0.5, 0.6), U_SHAPE, True),  # on the notch's bottom edge
        ((0.4, 0.3), U_SHAPE, True),  # on the notch's side edge
        # a ray through the reflex vertices (y = 0.6) and through the top vertices (y = 0.1)
        ((0.05, 0.6), U_SHAPE, False),
        ((0.2, 0.6), U_SHAPE, True),
        ((0.95, 0.6), U_SHAPE, False),
        ((0.5, 0.1), U_SHAPE, False),
        ((0.05, 0.1), U_SHAPE, False),
        ((0.95, 0.95), U_SHAPE, False),
    ],
)
def test_point_in_polygon(
    point: tuple[float, float], polygon: list[tuple[float, float]], inside: bool
) -> None:
    assert point_in_polygon(point, polygon) is inside


def _person_at(x: float, foot_y: float, *, score: float = 0.9, label: str = "person") -> Detection:
    """A 0.1 x 0.2 box whose foot is at (x, foot_y)."""
    return Detection(label, score, Box(x - 0.05, foot_y - 0.2, x + 0.05, foot_y))


DRIVE = Zone("drive", SQUARE, "include")
LAWN = Zone("lawn", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)], "include")
PAVEMENT = Zone("pavement", [(0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.6, 1.0)], "exclude")


@pytest.mark.parametrize(
    ("name", "filter_", "detection", "zones"),
    [
        ("no rules keep everything", DetectionFilter(), _person_at(0.5, 0.5), ()),
        ("wanted label", DetectionFilter(labels={"person"}), _person_at(0.5, 0.5), ()),
        ("unwanted label", DetectionFilter(labels={"car"}), _person_at(0.5, 0.5), None),
        (
            "score at the minimum",
            DetectionFilter(min_score=0.5),
            _person_at(0.5, 0.5, score=0.5),
            (),
        ),
        ("score under", DetectionFilter(min_score=0.5), _person_at(0.5, 0.5, score=0.49), None),
        ("big enough", DetectionFilter(min_area=0.02), _person_at(0.5, 0.5), ()),
        ("too small", DetectionFilter(min_area=0.03), _person_at(0.5, 0.5), None),
        (
            "foot in the include zone",
            DetectionFilter(zones=[DRIVE]),
            _person_at(0.5, 0.5),
            ("drive",),
        ),
        ("foot outside it", DetectionFilter(zones=[DRIVE]), _person_at(0.5, 0.9), None),
        # the box overlaps the zone, but the foot is what counts
        ("box over it, foot outside", DetectionFilter(zones=[DRIVE]), _person_at(0.5, 0.95), None),
        ("foot on its edge", DetectionFilter(zones=[DRIVE]), _person_at(0.5, 0.8), ("drive",)),
        (
            "in two includes",
            DetectionFilter(zones=[DRIVE, LAWN]),
            _person_at(0.3, 0.6),
            ("drive", "lawn"),
        ),
        ("in one of two", DetectionFilter(zones=[DRIVE, LAWN]), _person_at(0.3, 0.9), ("lawn",)),
        ("exclude only, outside it", DetectionFilter(zones=[PAVEMENT]), _person_at(0.3, 0.5), ()),
        ("exclude only, inside it", DetectionFilter(zones=[PAVEMENT]), _person_at(0.7, 0.5), None),
        (
            "exclude wins over include",
            DetectionFilter(zones=[DRIVE, PAVEMENT]),
            _person_at(0.7, 0.5),
            None,
        ),
        (
            "include, not excluded",
            DetectionFilter(zones=[DRIVE, PAVEMENT]),
            _person_at(0.3, 0.5),
            ("drive",),
        ),
    ],
)
def test_filter(
    name: str, filter_: DetectionFilter, detection: Detection, zones: tuple[str, ...] | None
) -> None:
    expected = [] if zones is None else [(detection, zones)]
    assert filter_.apply([detection]) == expected, name


def test_filter_keeps_order_and_drops_only_the_unwanted() -> None:
    detections = [
        _person_at(0.3, 0.5),
        _person_at(0.3, 0.5, label="cat"),
        _person_at(0.7, 0.5),
        _person_at(0.4, 0.4, label="car"),
    ]
    rules = DetectionFilter(labels=["person", "car"], zones=[DRIVE, PAVEMENT])
    assert rules.apply(detections) == [(detections[0], ("drive",)), (detections[3], ("drive",))]


@pytest.mark.parametrize(
    "polygon",
    [[(0.1, 0.1), (0.2, 0.2)], [(0.1, 0.1), (0.2, 0.2), (1.2, 0.5)], [(0.0, -0.1), (1, 0), (1, 1)]],
)
def test_zone_rejects_bad_polygons(polygon: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError):
        Zone("bad", polygon, "include")
