"""Label sets: the names a model's class indices stand for, from a file or built in."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

_DATA_PACKAGE = "vigil.inference"
_DATA_DIR = "data"
_SUFFIX = ".labels"


class LabelsError(ValueError):
    """A labels file that cannot be used, or a built-in set that does not exist."""


def parse_labels(text: str, *, source: str = "<labels>") -> list[str]:
    """One label per line, the class index being the line number (from 0).

    Labels are stripped; blank lines at the end are ignored, a blank line before the last label
    is an error naming `source` and the line (it would shift every later index by one)."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise LabelsError(f"{source}: no labels (one label per line, line 1 = class 0)")
    for number, label in enumerate(lines, start=1):
        if not label:
            raise LabelsError(
                f"{source}:{number}: empty label (class {number - 1}); every class needs a "
                "name, use a placeholder such as '???' for unused indices"
            )
    return lines


def load_labels(path: Path | str) -> list[str]:
    """The labels in the file at `path` (see `parse_labels`); `LabelsError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelsError(f"{path}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LabelsError(f"{path}: cannot read labels file: {error}") from error
    return parse_labels(text, source=str(path))


def builtin_names() -> list[str]:
    """The names of the label sets shipped with Vigil, sorted."""
    folder = resources.files(_DATA_PACKAGE) / _DATA_DIR
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX)
    )


def builtin_labels(name: str) -> list[str]:
    """A label set shipped with Vigil, by name (`"coco-80"`); `LabelsError` naming the known
    sets (and the closest one) for an unknown name."""
    names = builtin_names()
    if name not in names:
        hint = closest(name, names)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        raise LabelsError(
            f"unknown label set {name!r} (known: {', '.join(names) or 'none'}){suggestion}"
        )
    resource = resources.files(_DATA_PACKAGE) / _DATA_DIR / f"{name}{_SUFFIX}"
    return parse_labels(resource.read_text(encoding="utf-8"), source=f"built-in {name}")


def closest(label: str, labels: Sequence[str]) -> str | None:
    """The entry of `labels` most like `label` (case-insensitive), for "did you mean" messages;
    None when nothing is reasonably close."""
    by_folded = {candidate.casefold(): candidate for candidate in reversed(labels)}
    matches = difflib.get_close_matches(label.casefold(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[matches[0]] if matches else None
