"""Choose the source implementation for a stream's source spec."""

from __future__ import annotations

from vigil.config.sources import (
    FileSource,
    PublishSource,
    RtspSource,
    SourceSpec,
    TestSource,
    Transport,
    V4l2Source,
)
from vigil.media.callbacks import CallbackFaults
from vigil.media.relay import RelayHub
from vigil.media.rtsp_tcp import RtspTcpSource, native_tcp_available
from vigil.media.sources import (
    FailCallback,
    FileLoopSource,
    OutputCallback,
    PublishedSource,
    RtspPullSource,
    Source,
    TestPatternSource,
    V4l2DeviceSource,
)


def build_source(
    stream: str,
    spec: SourceSpec,
    on_output: OutputCallback,
    on_fail: FailCallback,
    *,
    read_batch_ms: int = 0,
    relays: RelayHub | None = None,
    faults: CallbackFaults | None = None,
) -> Source:
    """The source for `spec`, ready to be added to a pipeline.

    RTSP over TCP (and `auto`, which prefers TCP: nothing lost on a busy network) uses Vigil's
    own client when its native elements are built; UDP, RTSPS and the fallback use rtspsrc.
    """
    if isinstance(spec, RtspSource):
        native = (
            spec.transport in (Transport.TCP, Transport.AUTO)
            and spec.url.lower().startswith("rtsp://")
            and native_tcp_available()
        )
        if native:
            return RtspTcpSource(
                stream, spec, on_output, on_fail, read_batch_ms=read_batch_ms, faults=faults
            )
        return RtspPullSource(stream, spec, on_output, on_fail, faults)
    if isinstance(spec, TestSource):
        return TestPatternSource(stream, spec, on_output)
    if isinstance(spec, FileSource):
        return FileLoopSource(stream, spec, on_output, on_fail, faults)
    if isinstance(spec, PublishSource):
        if relays is None:
            raise TypeError("a publish source needs the relay hub")
        return PublishedSource(stream, relays.publish(stream), on_output)
    if isinstance(spec, V4l2Source):
        return V4l2DeviceSource(stream, spec, on_output, on_fail, faults)
    raise TypeError(f"unsupported source spec {type(spec).__name__}")
