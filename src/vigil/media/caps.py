"""Read the facts Vigil records (codec, size) out of GStreamer caps."""

from __future__ import annotations

from gi.repository import Gst

_CODECS = {"video/x-h264": "h264", "video/x-h265": "h265"}


def codec_of(caps: Gst.Caps | None) -> tuple[str | None, int | None, int | None]:
    """(codec, width, height) of encoded video caps; codec is None for anything but H.264/H.265."""
    if caps is None or caps.get_size() == 0 or caps.is_any():
        return None, None, None
    structure = caps.get_structure(0)
    codec = _CODECS.get(structure.get_name())
    ok_w, width = structure.get_int("width")
    ok_h, height = structure.get_int("height")
    return codec, (width if ok_w else None), (height if ok_h else None)
