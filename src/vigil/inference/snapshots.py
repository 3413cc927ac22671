"""Detection snapshots: the frame an object was seen in, box drawn, as a JPEG on disk.

`render_snapshot` draws and encodes (pure: an image in, bytes out). `SnapshotStore` keeps the
files under ``<root>/<stream>/<YYYY-MM-DD>/<object_id>-<kind>.jpg`` (the day in UTC) and names
each by its key, the path relative to the root, which events carry in their `snapshot` field.
Whole day directories are pruned, so retention never lists millions of files one by one.

Saving runs on inference worker threads and must never stop detection: a full or failing disk
is logged once (and once more when writing works again) and the snapshot is skipped, so the
event simply has none.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Literal

import cv2
import numpy as np

from vigil.inference.types import Box, Image

logger = logging.getLogger(__name__)

SnapshotKind = Literal["entered", "best"]

SUFFIX = ".jpg"
_DAY_FORMAT = "%Y-%m-%d"
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TEMP_PREFIX = ".tmp-"

# Drawing colours (BGR): a bright box with a dark outline reads on any background; the caption
# is white on a dark band for the same reason.
_BOX_COLOUR = (0, 215, 255)  # amber
_OUTLINE_COLOUR = (0, 0, 0)
_CAPTION_BAND = (32, 32, 32)
_CAPTION_TEXT = (255, 255, 255)


def render_snapshot(
    image: Image, box: Box, label: str, score: float, *, quality: int = 85
) -> bytes:
    """`image` (H x W x 3 BGR, left untouched) with `box` drawn and a ``"label 87%"`` caption,
    as a JPEG of the same size. `box` is normalised (0..1 of the frame)."""
    canvas = np.ascontiguousarray(image).copy()
    height, width = canvas.shape[:2]
    scale = max(height, width) / 640
    thickness = max(1, round(2 * scale))
    x1, y1 = _pixel(box.x1, width), _pixel(box.y1, height)
    x2, y2 = _pixel(box.x2, width), _pixel(box.y2, height)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), _OUTLINE_COLOUR, thickness + 2, cv2.LINE_AA)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_COLOUR, thickness, cv2.LINE_AA)

    caption = f"{label} {round(score * 100)}%"
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, 0.5 * scale)
    text_thickness = max(1, round(scale))
    (text_w, text_h), baseline = cv2.getTextSize(caption, font, font_scale, text_thickness)
    pad = max(2, round(3 * scale))
    band_h = text_h + baseline + 2 * pad
    # Above the box when there is room, else just inside its top edge.
    top = y1 - band_h if y1 - band_h >= 0 else min(y1, max(0, height - band_h))
    left = min(x1, max(0, width - text_w - 2 * pad))
    cv2.rectangle(canvas, (left, top), (left + text_w + 2 * pad, top + band_h), _CAPTION_BAND,
                  cv2.FILLED)  # fmt: skip
    cv2.putText(canvas, caption, (left + pad, top + pad + text_h), font, font_scale,
                _CAPTION_TEXT, text_thickness, cv2.LINE_AA)  # fmt: skip

    ok, encoded = cv2.imencode(SUFFIX, canvas, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode a {width}x{height} snapshot as JPEG")
    return encoded.tobytes()


def _pixel(value: float, size: int) -> int:
    return min(max(round(value * size), 0), max(size - 1, 0))


def _safe_part(text: str) -> str:
    """`text` as one harmless path component (stream names are safe already; object ids are
    whatever the tracker makes)."""
    part = _UNSAFE.sub("_", text) or "_"
    return "_" + part if part.startswith(".") else part


class SnapshotStore:
    """The snapshot files under `root`. Thread-safe; `save` never raises for disk trouble."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._failing = False

    def save(
        self, stream: str, object_id: str, kind: SnapshotKind, jpeg: bytes, at: datetime
    ) -> str | None:
        """Write `jpeg` as the `kind` snapshot of `object_id` seen at `at`; its key, or None
        if it could not be written (logged once until writing works again). A second save of
        the same object and kind replaces the first, atomically: a reader sees one or the
        other, never half a file."""
        day = at.astimezone(UTC).strftime(_DAY_FORMAT)
        relative = PurePosixPath(_safe_part(stream), day, f"{_safe_part(object_id)}-{kind}{SUFFIX}")
        target = self.root.joinpath(*relative.parts)
        temp = target.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex}{SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # No fsync: a snapshot lost to a power cut costs a picture, and an fsync per
            # object would cost the disk's attention that recording needs.
            with open(temp, "wb") as file:
                file.write(jpeg)
            os.replace(temp, target)
        except OSError as error:
            _remove_quietly(temp)
            self._failed(stream, error)
            return None
        self._succeeded()
        return str(relative)

    def path(self, key: str) -> Path | None:
        """The file of `key` if it exists; None for a key that is absolute, has ``..`` or
        empty parts, or leads (through symlinks too) outside the root."""
        if not key or "\\" in key or "\x00" in key:
            return None
        relative = PurePosixPath(key)
        if relative.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
            return None
        candidate = self.root.joinpath(*relative.parts)
        try:
            resolved = candidate.resolve(strict=True)
            if not resolved.is_relative_to(self.root.resolve()) or not resolved.is_file():
                return None
        except (OSError, RuntimeError):
            return None
        return resolved

    def prune(self, older_than: datetime) -> int:
        """Remove the day directories whose whole day (UTC) is before `older_than`; returns
        how many files went. Errors are logged and skipped: the next run tries again."""
        cutoff = older_than.astimezone(UTC)
        removed = 0
        try:
            streams = [entry for entry in self.root.iterdir() if entry.is_dir()]
        except FileNotFoundError:
            return 0
        except OSError:
            logger.exception("snapshots: cannot list %s", self.root)
            return 0
        for stream_dir in streams:
            for day_dir in _day_dirs(stream_dir):
                day = _parse_day(day_dir.name)
                end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
                if end > cutoff:
                    continue
                removed += _remove_tree(day_dir)
        # Stream directories stay, even empty: removing one could race a save creating it.
        return removed

    def _failed(self, stream: str, error: OSError) -> None:
        with self._lock:
            first, self._failing = not self._failing, True
        if first:
            logger.warning("%s: cannot write detection snapshots under %s (%s); events go "
                           "without one until writing works again", stream, self.root,
                           error)  # fmt: skip

    def _succeeded(self) -> None:
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            logger.info("detection snapshots are written again under %s", self.root)


def _day_dirs(stream_dir: Path) -> list[Path]:
    try:
        return sorted(entry for entry in stream_dir.iterdir()
                      if _DAY_NAME.fullmatch(entry.name) and entry.is_dir())  # fmt: skip
    except OSError:
        logger.exception("snapshots: cannot list %s", stream_dir)
        return []


def _parse_day(name: str) -> date:
    try:
        return datetime.strptime(name, _DAY_FORMAT).date()
    except ValueError:
        return date.max  # not a day directory: never old enough to remove


def _remove_tree(directory: Path) -> int:
    files = 0
    try:
        files = sum(1 for entry in directory.rglob("*") if not entry.is_dir())
        shutil.rmtree(directory)
    except OSError:
        logger.exception("snapshots: cannot remove %s", directory)
    return files


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
