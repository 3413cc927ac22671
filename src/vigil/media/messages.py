"""What a running pipeline tells its owner: frozen facts, made on GStreamer's threads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PipelineError:
    """The pipeline (or one of its elements) failed; `message` is safe to show a user."""

    source: str
    message: str
    debug: str
    # False when the failing element is not part of the source (e.g. the recording side):
    # replacing the source alone would not help.
    in_source: bool = True
    # True for a GStreamer resource error (cannot connect, read, write: the camera's or the
    # disk's fault) and for the source's own reports (its camera closed or refused); False
    # for errors inside the pipeline (data flow, negotiation, decoding).
    resource: bool = True


@dataclass(frozen=True)
class PipelineWarning:
    """An element warned; the pipeline keeps running."""

    source: str
    message: str


@dataclass(frozen=True)
class PipelineEos:
    """Every sink reached end-of-stream (the pipeline drained after a stop or a file's end)."""


@dataclass(frozen=True)
class FirstFrame:
    """The first keyframe reached the tee: the source is delivering recordable video."""

    codec: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class SegmentFileOpened:
    """The recording branch opened a new segment file."""

    location: str
    start: datetime
    codec: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class SegmentFileClosed:
    """The recording branch finished a segment file (it is complete on disk)."""

    location: str
    duration_s: float


@dataclass(frozen=True)
class RecordingBlockedMessage:
    """The recording branch cannot open a file (no volume has room); video is dropped until
    the next `SegmentFileOpened`."""

    reason: str


@dataclass(frozen=True)
class RecordingWriteFailed:
    """Writing a segment file failed; `no_space` when the disk was full."""

    location: str
    message: str
    no_space: bool


@dataclass(frozen=True)
class CallbackFailed:
    """A Python callback on a GStreamer thread raised (`where` names it); the pipeline keeps
    running with the callback's safe answer, but the stream is not what it should be."""

    where: str
    error: str
    in_source: bool = False


MediaMessage = (
    PipelineError
    | PipelineWarning
    | PipelineEos
    | FirstFrame
    | SegmentFileOpened
    | SegmentFileClosed
    | RecordingBlockedMessage
    | RecordingWriteFailed
    | CallbackFailed
)
