"""Video parameters shared by synthetic test sources and the camera simulator: codec and bounds."""

from __future__ import annotations

from enum import StrEnum


class Codec(StrEnum):
    """Video codecs Vigil records and re-serves without transcoding."""

    H264 = "h264"
    H265 = "h265"


# Bounds shared by `test://` sources and the simulator, so a simulated camera and a test
# stream accept exactly the same pictures. 7680x4320 is 8K; encoders want even sizes (4:2:0).
MIN_WIDTH, MAX_WIDTH = 16, 7680
MIN_HEIGHT, MAX_HEIGHT = 16, 4320
MIN_FPS, MAX_FPS = 1, 120
MIN_BITRATE_KBIT, MAX_BITRATE_KBIT = 50, 100_000
MIN_GOP_FRAMES, MAX_GOP_FRAMES = 1, 3600

DEFAULT_WIDTH, DEFAULT_HEIGHT = 1280, 720
DEFAULT_FPS = 25
DEFAULT_BITRATE_KBIT = 2000


def check_even(value: int, what: str) -> int:
    """Return `value` if even, else raise ``ValueError`` naming `what` (4:2:0 needs even sizes)."""
    if value % 2:
        raise ValueError(f"{what} must be even (4:2:0 video), got {value}")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. ``1280x720``) and check it against the bounds above."""
    width_text, sep, height_text = text.lower().partition("x")
    digits = width_text + height_text
    if not sep or not width_text or not height_text or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"size must look like WIDTHxHEIGHT, e.g. 1280x720, got {text!r}")
    width, height = int(width_text), int(height_text)
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"width must be {MIN_WIDTH}..{MAX_WIDTH}, got {width}")
    if not MIN_HEIGHT <= height <= MAX_HEIGHT:
        raise ValueError(f"height must be {MIN_HEIGHT}..{MAX_HEIGHT}, got {height}")
    return check_even(width, "width"), check_even(height, "height")
