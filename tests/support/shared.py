"""The team's shared test material (`../shared`): real footage and the default model's cache.

Found at `$VIGIL_SHARED`, else beside the checkout (`<repo>/../shared`), else `/work/shared`.
A test that needs it fails naming what is missing rather than skipping: a skipped detection test
would pass without looking at a single frame.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = "nanodet-coco-416.onnx"


def shared_dir() -> Path:
    """The shared folder; AssertionError naming where it was looked for when absent."""
    candidates = [Path(p) for p in [os.environ.get("VIGIL_SHARED", "")] if p]
    candidates += [REPO.parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "media").is_dir():
            return candidate
    raise AssertionError(
        "the shared test material was not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); set VIGIL_SHARED"
    )


def vtest_avi() -> Path:
    """OpenCV's vtest.avi: 768x576, 10 fps, 795 frames of people walking past a fixed camera."""
    path = shared_dir() / "media" / "vtest.avi"
    assert path.is_file(), f"{path} is missing"
    return path


def models_dir() -> Path:
    """Where the default model is installed for this checkout (`scripts/bootstrap.sh` puts it
    in `<repo>/data/models`), else the shared cache."""
    installed = REPO / "data" / "models"
    if (installed / MODEL_FILE).is_file():
        return installed
    cached = shared_dir() / "models"
    assert (cached / MODEL_FILE).is_file(), f"no {MODEL_FILE} in {installed} or {cached}"
    return cached


def nanodet_model() -> Path:
    """The default detector's ONNX file."""
    return models_dir() / MODEL_FILE
