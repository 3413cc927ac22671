"""Label sets: files, built-in sets and "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.inference.labels import (
    LabelsError,
    builtin_labels,
    builtin_names,
    closest,
    load_labels,
    parse_labels,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("person\ncar\n", ["person", "car"]),
        ("person\ncar", ["person", "car"]),
        ("  person \r\ncar\t\r\n\n\n", ["person", "car"]),
        ("???\nperson\n", ["???", "person"]),
    ],
)
def test_parse_labels_index_is_line_number(text: str, expected: list[str]) -> None:
    assert parse_labels(text) == expected


def test_an_empty_label_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.labels"
    path.write_text("person\nbicycle\n\ncar\n")
    with pytest.raises(LabelsError, match=r"mine\.labels:3: empty label \(class 2\)"):
        load_labels(path)


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.labels"
    path.write_text("\n\n")
    with pytest.raises(LabelsError, match=r"empty\.labels: no labels"):
        load_labels(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=r"nowhere\.labels: labels file not found"):
        load_labels(tmp_path / "nowhere.labels")


def test_builtin_coco_80() -> None:
    labels = builtin_labels("coco-80")
    assert len(labels) == 80
    assert (labels[0], labels[2], labels[7], labels[79]) == ("person", "car", "truck", "toothbrush")
    assert "coco-80" in builtin_names()


def test_builtin_matches_the_shared_copy() -> None:
    from tests.support.shared import shared_dir

    assert builtin_labels("coco-80") == load_labels(shared_dir() / "models" / "coco-80.labels")


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(LabelsError, match=r"unknown label set 'coco80'.*coco-80.*did you mean"):
        builtin_labels("coco80")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [("persn", "person"), ("Person", "person"), ("trucks", "truck"), ("xylophone-quartet", None)],
)
def test_closest(asked: str, expected: str | None) -> None:
    assert closest(asked, builtin_labels("coco-80")) == expected
