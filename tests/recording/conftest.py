"""Real recordings made once per test session with gst-launch-1.0 (nothing binary committed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from recorded_media import FRAGMENTED, H264, H265, PLAIN, has_element, record, tools_missing


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = tools_missing()
    if reason is not None:
        pytest.skip(reason)
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def h264_segments(media_dir: Path) -> list[Path]:
    """Two fragmented H.264 segments of 5 s (250 frames at 25 fps)."""
    files = record(media_dir / "h264", H264, FRAGMENTED, buffers=250)
    assert len(files) == 2
    return files


@pytest.fixture(scope="session")
def h265_segment(media_dir: Path) -> Path:
    """One fragmented H.265 segment of 4 s."""
    if not has_element("x265enc"):
        pytest.skip("x265enc not available")
    (file,) = record(media_dir / "h265", H265, FRAGMENTED, buffers=100)
    return file


@pytest.fixture(scope="session")
def plain_h264_segment(media_dir: Path) -> Path:
    """One non-fragmented H.264 segment of 5 s (mdat first, moov at the end)."""
    (file,) = record(media_dir / "plain", H264, PLAIN, buffers=125)
    return file
