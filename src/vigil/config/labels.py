"""The built-in model's labels, so a misspelt `detect.labels` entry is caught with the config."""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources

# Label sets shipped with Vigil, usable by name in `detection.models.<name>.labels`.
BUILTIN_LABEL_SETS = ("coco-80",)


@cache
def builtin_labels() -> tuple[str, ...]:
    """COCO-80 in class order (the default model's), or () if the data file is absent."""
    try:
        text = resources.files("vigil.inference").joinpath("data/coco-80.labels").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def check_labels(labels: list[str]) -> str | None:
    """A sentence naming the first label the default model does not know, or None."""
    known = builtin_labels()
    if not known:
        return None
    for label in labels:
        if label not in known:
            close = difflib.get_close_matches(label, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return f"'{label[:40]}' is not a label of the built-in model (COCO-80){hint}"
    return None
