"""Turning one keyframe into a JPEG, on demand: the stream's snapshot.

The ingest pipeline keeps the latest keyframe (see `IngestPipeline.latest_keyframe`); nothing is
decoded until someone asks. Here that one access unit goes through a short pipeline of its own,
`appsrc ! parse ! avdec ! videoconvert ! jpegenc ! appsink`, in the caller's (worker) thread,
at the stream's own size. A keyframe needs no earlier frame, so one buffer is enough.
"""

from __future__ import annotations

import itertools

from gi.repository import Gst

from vigil.media import gst

# JPEG quality: small enough to poll, sharp enough to read a number plate at camera size.
JPEG_QUALITY = 85
TIMEOUT_NS = 5 * Gst.SECOND

_DECODERS = {
    "video/x-h264": ("h264parse", "avdec_h264"),
    "video/x-h265": ("h265parse", "avdec_h265"),
}


class SnapshotFailed(RuntimeError):
    """The keyframe could not be decoded."""


def jpeg_of(sample: Gst.Sample, *, quality: int = JPEG_QUALITY) -> bytes:
    """Decode the keyframe in `sample` (buffer + caps) and encode it as a JPEG. Blocking."""
    caps, buffer = sample.get_caps(), sample.get_buffer()
    if caps is None or caps.is_empty() or buffer is None:
        raise SnapshotFailed("the keyframe has no caps or no data")
    names = _DECODERS.get(caps.get_structure(0).get_name())
    if names is None:
        raise SnapshotFailed(f"cannot decode {caps.get_structure(0).get_name()}")
    pipeline = Gst.Pipeline.new("snapshot")
    source = gst.make("appsrc", caps=caps, format=Gst.Format.TIME)
    elements = [
        source,
        gst.make(names[0]),
        gst.make(names[1], max_threads=1),  # one frame: threads would only cost start-up
        gst.make("videoconvert"),
        gst.make("jpegenc", quality=quality),
        gst.make("appsink", sync=False, max_buffers=1),
    ]
    for element in elements:
        pipeline.add(element)
    for upstream, downstream in itertools.pairwise(elements):
        if not upstream.link(downstream):
            raise SnapshotFailed(f"cannot link {upstream.get_name()} to {downstream.get_name()}")
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise SnapshotFailed("the decoder did not start")
        # Pushed as it is: the buffer is shared with the stream's pipeline (the recording
        # may still hold it), so it must not be changed, and with sync=false its times do
        # not matter.
        source.emit("push-buffer", buffer)
        source.emit("end-of-stream")  # drains the decoder: the one frame comes out now
        jpeg = elements[-1].emit("try-pull-sample", TIMEOUT_NS)
        if jpeg is None:
            message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            reason = message.parse_error()[0].message if message is not None else "no frame"
            raise SnapshotFailed(f"the keyframe did not decode: {reason}")
        out = jpeg.get_buffer()
        return bytes(out.extract_dup(0, out.get_size()))
    finally:
        pipeline.set_state(Gst.State.NULL)
