"""What the API may reach: the managers and stores, behind narrow interfaces (no GStreamer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from vigil.config.events import EventsConfig
from vigil.events import EventBus
from vigil.recording.export import Exporter
from vigil.recording.storage import StorageManager
from vigil.serve.sessions import SessionKind, SessionRegistry
from vigil.serve.webrtc.signalling import Answer
from vigil.store.db import Database
from vigil.store.holds import HoldStore
from vigil.store.recordings import GapStore, SegmentStore
from vigil.store.tokens import TokenStore
from vigil.streams.desired import DesiredState
from vigil.streams.status import StreamStatus

T = TypeVar("T")


class StreamsView(Protocol):
    """The stream manager as the API sees it."""

    def statuses(self) -> list[StreamStatus]: ...

    def status(self, name: str) -> StreamStatus | None: ...

    async def snapshot(self, name: str) -> bytes | None:
        """The stream's latest keyframe as a JPEG; None if it has none (not streaming)."""
        ...


class WebRtcGateway(Protocol):
    """WHEP playback and WHIP ingest as the API sees them (`vigil.serve.webrtc.gateway`).
    Refusals are raised as `SignallingError` (status, message, Retry-After)."""

    def ice_links(self) -> list[str]:
        """Link header values (rel="ice-server") for the configured STUN/TURN servers."""
        ...

    async def play(self, stream: str, offer_text: str, *, remote: str, user: str | None
                   ) -> Answer: ...  # fmt: skip

    async def publish(self, stream: str, offer_text: str, *, remote: str, user: str | None
                      ) -> Answer: ...  # fmt: skip

    async def trickle(self, kind: SessionKind, stream: str, session_id: str,
                      fragment_text: str, if_match: str | None) -> None: ...  # fmt: skip

    async def end(self, kind: SessionKind, stream: str, session_id: str) -> None: ...


class DetectionView(Protocol):
    """Detection as the API sees it (`GET /streams/{name}/detections/latest`)."""

    def latest(self, stream: str) -> dict[str, Any] | None:
        """What the detector saw last in `stream`; None when detection is not enabled for it.

        Keys: ``stream``, ``at`` (datetime of the frame, None before the first), ``mode``
        (``"keyframes"`` or ``"all"``), ``fps`` (the detect rate), ``motion`` (bool, None
        without a motion gate), ``detections`` (list of ``{label, score, box: (x1, y1, x2, y2)
        normalised, object_id: str | None, zones: list[str]}``), ``skipped_fps``,
        ``processed_fps``, ``provider`` (ONNX Runtime's execution provider), ``state``
        (``running``, ``off``, ``failed``) and ``reason``. Called on the event loop: it
        must not block."""
        ...


class SnapshotFiles(Protocol):
    """Detection snapshots as the API sees them (`vigil.inference.snapshots.SnapshotStore`)."""

    def path(self, key: str) -> Path | None:
        """The file an event's `snapshot` key names, if it exists (and lies in the store)."""
        ...


@dataclass(frozen=True)
class PluginReport:
    """GStreamer plugins as `vigil doctor` found them (the API must not import gi itself)."""

    ok: bool
    missing_packages: list[str]
    missing_elements: list[str]
    missing_optional: list[str]
    hardware: list[str]


@dataclass
class ApiServices:
    """Everything the routes use. Built by `vigil.app`; tests may build their own."""

    bus: EventBus
    db: Database
    segments: SegmentStore
    gaps: GapStore
    tokens: TokenStore
    streams: StreamsView
    version: str
    gstreamer_version: str
    started_at: datetime
    ready: Callable[[], bool]
    # Blocking work (SQLite reads, file probes) runs here, off the event loop.
    executor: Executor | None = None
    # Segment files are served only from inside these directories.
    recording_roots: Iterable[Path] = ()
    # Volumes, retention, eject/attach; None where the API is served without them (some tests).
    storage: StorageManager | None = None
    holds: HoldStore | None = None
    # Open RTSP/WebRTC sessions; None where the API is served without the servers.
    sessions: SessionRegistry | None = None
    # WHEP/WHIP; None where WebRTC is disabled or the API is served without it.
    webrtc: WebRtcGateway | None = None
    # Exports by time range; None where the API is served without them (some tests).
    exports: Exporter | None = None
    # The configuration as desired (file + API overlay); None in tests that need no changes.
    desired: DesiredState | None = None
    # `vigil doctor`'s findings, made at start-up: which elements are there, which are not.
    plugins: PluginReport | None = None
    # What each stream's detector saw last; None where detection is not running at all.
    detection: DetectionView | None = None
    # Detection snapshots by key (blocking: call through `run`); None where there are none.
    snapshots: SnapshotFiles | None = None
    # An object event's clip: from this many seconds before it was first seen to this many
    # after it was last seen.
    clip_padding_s: tuple[float, float] = (5.0, 5.0)
    # Per-client queue and heartbeat of the live event WebSocket.
    events_config: EventsConfig = field(default_factory=EventsConfig)
    extras: dict[str, object] = field(default_factory=dict)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking `fn` off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
