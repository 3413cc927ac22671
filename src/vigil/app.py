"""The composition root: builds every service from a resolved configuration and runs them.

Start order: folders → database (migrate) → event history → volumes (each usable one: crash
leftovers repaired, unknown files indexed) → storage checks and retention → GLib loop (GStreamer
initialised meanwhile) → simulator (if configured; spawned at the very start) → streams; then,
once every stream records or has shown it cannot yet, the rest: backup schedule, RTSP server,
WebRTC, detection, API. Only what recording needs is imported before the streams start; the
rest (FastAPI, OpenTelemetry, ONNX Runtime and OpenCV, the RTSP server) after: a restart's cost
in video is the time to the first recorded frame. Stop runs it backwards, each stream
finishing its segment; the event history stores the last events before the database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from vigil import __version__
from vigil.config.resolve import ResolvedConfig, StreamPlan
from vigil.events import (
    ConfigApplied,
    EventBus,
    RecordingRepaired,
    SegmentOpened,
    StreamStateChanged,
    Subscription,
    utc_now,
)
from vigil.media import gst
from vigil.media.mainloop import GLibLoopThread
from vigil.media.relay import RelayHub
from vigil.observability.event_log import EventLog
from vigil.ops.simulator_process import SimulatorProcess
from vigil.ops.systemd import Notifier, ServiceHeartbeat, status_line
from vigil.recording.repair import RepairReport
from vigil.recording.retention import Retention
from vigil.recording.segments import SegmentIndex, close_dangling_gaps
from vigil.recording.storage import StorageManager
from vigil.recording.volumes import VolumePool
from vigil.serve.sessions import SessionRegistry
from vigil.store.db import Database
from vigil.store.events import EventStore
from vigil.store.holds import HoldStore
from vigil.store.overlay import OverlayStore
from vigil.store.recordings import GapStore, SegmentStore
from vigil.store.retention import RetentionStore
from vigil.store.volumes import VolumeStore
from vigil.streams.desired import DesiredState
from vigil.streams.manager import StreamManager
from vigil.streams.state import StreamState

if TYPE_CHECKING:
    # Imported where they start, after the streams (see the module's docstring).
    from opentelemetry.sdk.trace import TracerProvider

    from vigil.api.server import ApiServer
    from vigil.api.services import PluginReport
    from vigil.config.detection import StreamDetectConfig
    from vigil.inference.keeper import EventKeeper
    from vigil.inference.service import DetectionService
    from vigil.inference.snapshots import SnapshotStore
    from vigil.inference.types import Image
    from vigil.media.detect import DetectBranch
    from vigil.ops.backup import BackupScheduler
    from vigil.recording.export import Exporter
    from vigil.serve.rtsp_server import RtspServer
    from vigil.serve.webrtc.gateway import WebRtcGateway

logger = logging.getLogger(__name__)

T = TypeVar("T")
FrameHandler = Callable[["Image", datetime], None]

# Vigil speaks sd_notify when given a Notifier (tests/ops/test_systemd_e2e.py runs when True).
SYSTEMD_NOTIFY = True
# How long the services that follow the streams wait for every stream to record its first frame
# (or show that it cannot yet: no camera, no publisher, no space) before starting anyway.
RECORDING_HEAD_START_S = 5.0
NOT_RECORDING_SOON = (StreamState.RECONNECTING, StreamState.STALLED, StreamState.FAILED)
# What the services started after the streams import (each imports its own where it starts).
LATER_MODULES = (
    "vigil.ops.backup", "vigil.serve.rtsp_server", "vigil.serve.webrtc.gateway",
    "vigil.inference.service", "vigil.inference.keeper", "vigil.media.detect",
    "vigil.media.doctor", "vigil.media.export", "vigil.recording.export", "vigil.api.app",
    "vigil.api.server", "vigil.observability.tracing",
)  # fmt: skip


@dataclass(frozen=True)
class StartupSummary:
    """What an operator needs to know once Vigil is up."""

    version: str
    recording_root: str
    database: str
    volumes: list[str]  # one line per volume: path, state (and why when not online)
    api_url: str
    streams: int
    simulator_urls: list[str]
    rtsp_url: str = ""  # rtsp://host:port/<stream>, when the RTSP server runs


class Vigil:
    """One running Vigil service."""

    def __init__(
        self,
        resolved: ResolvedConfig,
        *,
        notifier: Notifier | None = None,
        watchdog_interval: float | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = resolved
        self.config_path = config_path
        self.desired: DesiredState | None = None
        self._notifier = notifier
        self._watchdog_interval = watchdog_interval
        self._heartbeat: ServiceHeartbeat | None = None
        self._stopping = False
        self._tracer_provider: TracerProvider | None = None  # set while tracing is on
        self.bus: EventBus | None = None
        self.db: Database | None = None
        self.segments: SegmentStore | None = None
        self.index: SegmentIndex | None = None
        self.streams: StreamManager | None = None
        self.api: ApiServer | None = None
        self._exports: Exporter | None = None
        self.storage: StorageManager | None = None
        self._backups: BackupScheduler | None = None
        self.event_log: EventLog | None = None
        self._ready = False
        self._glib = GLibLoopThread()
        # Where each stream's video meets its viewers (and a publisher meets its stream).
        self.relays = RelayHub()
        self.sessions = SessionRegistry()
        self.rtsp: RtspServer | None = None
        self.webrtc: WebRtcGateway | None = None
        self.detection: DetectionService | None = None
        self._snapshots: SnapshotStore | None = None
        self._detection_task: asyncio.Task[None] | None = None
        self._keeper: EventKeeper | None = None
        self._simulator: SimulatorProcess | None = None
        self._simulator_start: asyncio.Task[None] | None = None
        self._gst_ready: asyncio.Future[None] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        # Pipeline set-up and tear-down block (state changes, EOS drains): give them threads
        # enough that 100 streams stopping at once finish in one drain time, not a hundred.
        self._media = ThreadPoolExecutor(
            max_workers=min(128, 8 + len(resolved.streams)), thread_name_prefix="media"
        )

    async def _write(self, fn: partial[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def _run_write(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    @property
    def snapshots(self) -> SnapshotStore:
        """Detection snapshots on disk (made on first use: its module loads OpenCV)."""
        if self._snapshots is None:
            from vigil.inference.snapshots import SnapshotStore

            self._snapshots = SnapshotStore(self.config.data_dir / "snapshots")
        return self._snapshots

    async def start(self) -> StartupSummary:
        """Bring every service up, recording first; returns what to tell the operator."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.bus = EventBus()
        if cfg.tracing.enabled:
            from vigil.observability import tracing

            self._tracer_provider = tracing.build_provider(cfg.tracing)
            tracing.install(self._tracer_provider)
        # Neither needs anything below, and both wait for other processes or in C most of the
        # time: GStreamer reads its plugin registry, the simulator starts encoding.
        self._gst_ready = gst_ready = loop.run_in_executor(self._media, gst.init)
        if cfg.simulator is not None:
            self._simulator = SimulatorProcess(cfg.simulator)
            self._simulator_start = loop.create_task(self._simulator.start(), name="simulator")
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(cfg.database_path)
        await self._write(partial(self.db.migrate))
        # First after the DB, so the history holds everything from start-up repair on.
        self.event_log = EventLog(
            self.bus, EventStore(self.db), self._write,
            retention=timedelta(days=cfg.config.events.retention_days),
            max_rows=cfg.config.events.max_rows,
        )  # fmt: skip
        self.event_log.start()
        self.segments = SegmentStore(self.db)
        # Volumes first: each usable one has its crash leftovers repaired and the files the
        # index does not know (a lost row, a disk from elsewhere) indexed, before recording.
        # This stays ahead of the streams: repair closes rows from files that must not be
        # growing, and the reindex walk would take a segment being written for a stray file.
        await self._start_storage()
        gaps = GapStore(self.db)
        await self._write(partial(close_dangling_gaps, gaps, self.segments))
        assert self.storage is not None
        self.index = SegmentIndex(
            self.segments, self.bus, self._writer, gaps, volume_of=self.storage.pool.volume_of
        )
        self.storage.start()

        await gst_ready
        self._glib.start()
        simulator_urls: list[str] = []
        if self._simulator_start is not None and cfg.simulator is not None:
            await self._simulator_start
            simulator_urls = [
                f"rtsp://127.0.0.1:{cfg.simulator.port}/cam{i}"
                for i in range(1, cfg.simulator.cameras + 1)
            ]
        self.desired = DesiredState(
            file_config=cfg.config, config_path=self.config_path, base_dir=cfg.base_dir,
            env=None, store=OverlayStore(self.db), write=self._run_write, bus=self.bus,
        )  # fmt: skip
        effective = await self.desired.load()
        self.streams = StreamManager(
            bus=self.bus, index=self.index, media_executor=self._media,
            volumes=self.storage.pool, relays=self.relays,
        )  # fmt: skip
        self.storage.attach_streams(self.streams.rotate)
        recording = [plan.name for plan in effective.streams if plan.enabled and plan.record]
        progress = self.bus.subscribe(lambda e: isinstance(e, SegmentOpened | StreamStateChanged))
        with progress:
            self.streams.start(list(effective.streams))
            self.desired.attach(self.streams)
            self.desired.watch()
            # What follows serves, watches or tidies the recordings; none of it is needed to
            # record. Its imports and set-up (seconds of Python) would compete with the streams'
            # connecting for the one interpreter, so they wait until recording is under way.
            await self._recording_under_way(recording, progress, RECORDING_HEAD_START_S)
        # In a worker, so the loop goes on serving the streams meanwhile (about a second).
        await asyncio.to_thread(_import_all, LATER_MODULES)
        await self._start_backups()
        await self._start_rtsp()
        await self._start_webrtc()
        await self._start_detection(list(effective.streams))
        await self._start_api()
        self._ready = True
        if self._notifier is not None:
            self._heartbeat = ServiceHeartbeat(
                self._notifier, self._glib, self._watchdog_interval, self.status_line
            )
            self._notifier.ready()
            self._heartbeat.start()
        return StartupSummary(
            version=__version__,
            recording_root=str(cfg.recording_root),
            volumes=[
                f"{v.path} ({v.state.value}"
                + (f": {v.reason})" if v.state.value != "online" else ")")
                for v in (self.storage.pool.views() if self.storage is not None else [])
            ],
            database=str(cfg.database_path),
            api_url=self.api.url if self.api is not None else "",
            streams=sum(1 for plan in effective.streams if plan.enabled),
            simulator_urls=simulator_urls,
            rtsp_url=self.rtsp.url_pattern if self.rtsp is not None else "",
        )

    async def _recording_under_way(
        self, names: list[str], wake: Subscription, timeout: float
    ) -> None:
        """Return once each of `names` has opened its first segment or is in a state that will
        not record soon (reconnecting, stalled, failed, blocked for space), or after `timeout`.
        `wake` delivers the streams' state changes and segment openings: when to look again."""
        assert self.streams is not None and self.index is not None
        loop = asyncio.get_running_loop()
        waiting = set(names)
        deadline = loop.time() + timeout
        while True:
            waiting -= set(self.index.writing().values())
            waiting -= {
                status.name
                for status in self.streams.statuses()
                if status.state in NOT_RECORDING_SOON or status.recording_blocked
            }
            remaining = deadline - loop.time()
            if not waiting:
                return
            if remaining <= 0:
                logger.info(
                    "%d stream(s) not recording yet after %.0f s (%s); starting the other "
                    "services", len(waiting), timeout, ", ".join(sorted(waiting)[:5]),
                )  # fmt: skip
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wake.get()

    async def _start_backups(self) -> None:
        from vigil.ops.backup import BackupScheduler

        self._backups = BackupScheduler.from_config(self.config, config_path=self.config_path)
        self._backups.start()

    async def _start_detection(self, plans: list[StreamPlan]) -> None:
        """Detection on every stream that asks for it, following configuration changes. It
        only takes frames off the streams' relays: it never holds up their recording."""
        from vigil.inference.keeper import EventKeeper
        from vigil.inference.service import DetectionService
        from vigil.media.detect import DetectBranch

        cfg = self.config
        assert self.bus is not None

        def branch(name: str, settings: StreamDetectConfig, on_frame: FrameHandler,
                   on_error: Callable[[str], None]) -> DetectBranch:  # fmt: skip
            return DetectBranch(
                name, self.relays.video(name), fps=settings.fps, decode=settings.decode.value,
                decoder=cfg.detection.decoder.value, frame_width=cfg.detection.frame_width,
                on_frame=on_frame, on_error=on_error,
            )  # fmt: skip

        self.detection = DetectionService(
            cfg.detection, models_dir=cfg.models_dir, snapshots=self.snapshots,
            publish=self.bus.publish_threadsafe, branch_factory=branch,
        )  # fmt: skip
        detection = self.detection
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._media, detection.apply, plans)
        subscription = self.bus.subscribe(lambda event: isinstance(event, ConfigApplied))

        async def follow() -> None:
            with subscription:
                while True:
                    await subscription.get()
                    current = self.desired.current.streams if self.desired is not None else ()
                    await loop.run_in_executor(self._media, detection.apply, list(current))

        self._detection_task = loop.create_task(follow(), name="detection-config")
        assert self.db is not None
        self._keeper = EventKeeper(
            self.bus, HoldStore(self.db), self._run_write,
            keep_days=cfg.detection.keep_recordings_days,
            padding_s=(cfg.detection.clip_pre_s, cfg.detection.clip_post_s),
            snapshots=self.snapshots,
            snapshot_retention_days=cfg.config.events.retention_days,
        )  # fmt: skip
        self._keeper.start()

    async def _start_storage(self) -> None:
        cfg, storage_cfg = self.config, self.config.config.storage
        assert self.db is not None and self.bus is not None and self.segments is not None
        volume_store = VolumeStore(self.db)
        known = await self._write(partial(volume_store.paths))
        pool = VolumePool(
            cfg.volumes, policy=storage_cfg.policy, known_paths=known,
            on_no_room=lambda: self.storage.request_clean() if self.storage else None,
        )  # fmt: skip
        retention_store = RetentionStore(self.db)
        retention = Retention(
            pool, retention_store, HoldStore(self.db), retain_days=self._retain_days,
            writing=lambda: set(self.index.writing()) if self.index is not None else set(),
        )  # fmt: skip
        self.storage = StorageManager(
            pool, bus=self.bus, segments=self.segments, volumes=volume_store,
            retention=retention, retention_store=retention_store, write=self._run_write,
            writing=lambda: self.index.writing() if self.index is not None else {},
            policy=storage_cfg.policy.value, interval_s=storage_cfg.check_interval_s,
        )  # fmt: skip
        self.storage.on_repair = self._log_repair
        await self.storage.prepare()
        await self.storage.refresh_oldest()
        if not pool.usable():
            logger.error(
                "no recording volume is usable: %s",
                "; ".join(f"{v.path}: {v.state} ({v.reason})" for v in pool.views()),
            )

    def _retain_days(self) -> dict[str, float | None]:
        plans = self.desired.current.streams if self.desired is not None else self.config.streams
        return {plan.name: plan.retain_days for plan in plans}

    async def _plugin_report(self) -> PluginReport:
        from vigil.api.services import PluginReport
        from vigil.media import doctor

        report = await asyncio.get_running_loop().run_in_executor(self._media, doctor.examine)
        return PluginReport(
            ok=report.ok, missing_packages=report.missing_packages,
            missing_elements=[c.element for c in report.required if not c.present],
            missing_optional=[c.element for c in report.optional if not c.present],
            hardware=list(report.hardware),
        )  # fmt: skip

    async def _start_api(self) -> None:
        """Serve the HTTP API. Without any token it listens on loopback only, and says so."""
        from vigil.api.app import create_api
        from vigil.api.server import ApiServer, is_loopback
        from vigil.api.services import ApiServices
        from vigil.media.export import write_mp4
        from vigil.observability import tracing
        from vigil.recording.export import Exporter
        from vigil.store.tokens import Role, TokenStore

        cfg = self.config
        assert self.db is not None and self.bus is not None and self.streams is not None
        assert self.segments is not None
        tokens = TokenStore(self.db)
        configured = {t.sha256: (t.name, Role(t.role)) for t in cfg.api.tokens}
        # Exports are written beside the database, not to /tmp (often a small RAM disk).
        assert self.storage is not None
        roots = _LiveRoots(self.storage.pool)
        self._exports = Exporter(self.segments, roots, cfg.data_dir / "exports", write_mp4)
        if swept := await asyncio.to_thread(self._exports.sweep):
            logger.info("removed %d export file(s) left by the previous run", swept)
        services = ApiServices(
            bus=self.bus, db=self.db, segments=self.segments, gaps=GapStore(self.db),
            tokens=tokens, streams=self.streams, version=__version__,
            recording_roots=roots, exports=self._exports, storage=self.storage,
            holds=HoldStore(self.db), sessions=self.sessions,
            gstreamer_version=gst.version_string(), started_at=utc_now(),
            ready=lambda: self._ready and not self._stopping, desired=self.desired,
            events_config=cfg.config.events, plugins=await self._plugin_report(),
            webrtc=self.webrtc, detection=self.detection, snapshots=self.snapshots,
            clip_padding_s=(cfg.detection.clip_pre_s, cfg.detection.clip_post_s),
        )  # fmt: skip
        host = cfg.api.host
        if not configured and not await self._write(partial(tokens.active)):
            if not is_loopback(host):
                logger.warning(
                    "no API token exists: the API listens on 127.0.0.1 only instead of %s "
                    "(create one with `vigil tokens create NAME --role admin`)",
                    cfg.api.listen,
                )
                host = "127.0.0.1"
            else:
                logger.info("no API token exists: open access, on loopback only")
        app = create_api(
            services, configured_tokens=configured, cors_origins=cfg.api.cors_origins,
            tracer_provider=tracing.current_provider(),
        )  # fmt: skip
        self.api = ApiServer(app, host, cfg.api.port)
        await self.api.start()

    async def _start_rtsp(self) -> None:
        """Serve every stream at rtsp://host:port/<name>, and take RTSP publishers. Without
        any credential (no API token, no RTSP user) it listens on loopback only, and says so."""
        from vigil.api.server import is_loopback
        from vigil.serve.rtsp_auth import RtspAuthPolicy
        from vigil.serve.rtsp_server import RtspServer
        from vigil.store.tokens import Role, TokenStore

        cfg, rtsp = self.config, self.config.config.rtsp
        if not rtsp.enabled:
            return
        assert self.db is not None
        tokens = TokenStore(self.db)
        configured = {t.sha256: (t.name, Role(t.role)) for t in cfg.api.tokens}
        policy = RtspAuthPolicy(
            users=rtsp.users, anonymous_read=rtsp.anonymous_read, methods=rtsp.auth_methods,
            tokens=lambda: {**tokens.active(), **configured},
        )  # fmt: skip
        host = rtsp.host
        if not rtsp.users and not configured and not await self._write(partial(tokens.active)):
            if not is_loopback(host):
                logger.warning(
                    "no API token and no RTSP user exists: RTSP listens on 127.0.0.1 only "
                    "instead of %s (create a token with `vigil tokens create NAME --role "
                    "viewer`, or add rtsp.users)", rtsp.listen,
                )  # fmt: skip
                host = "127.0.0.1"
            else:
                logger.info("no API token and no RTSP user exists: RTSP open, on loopback only")
        tls = None
        if rtsp.tls_certificate is not None and rtsp.tls_key is not None:
            tls = (cfg.base_dir / rtsp.tls_certificate, cfg.base_dir / rtsp.tls_key)
        server = RtspServer(
            host=host, port=rtsp.port, policy=policy, relays=self.relays, sessions=self.sessions,
            streams=lambda: self.desired.current.streams if self.desired is not None else (),
            tls=tls, multicast_config=rtsp, session_timeout_s=rtsp.session_timeout_s,
        )  # fmt: skip
        await asyncio.wrap_future(self._glib.call(server.start))
        self.rtsp = server

    async def _start_webrtc(self) -> None:
        """WHEP playback and WHIP ingest, answered through the API's HTTP server."""
        from vigil.serve.webrtc.gateway import WebRtcGateway

        config = self.config.config.webrtc
        if not config.enabled:
            logger.info("WebRTC (WHEP/WHIP) is disabled")
            return
        self.webrtc = WebRtcGateway(
            config, relays=self.relays, sessions=self.sessions, glib=self._glib.call,
            plans=lambda: self.desired.current.streams if self.desired is not None else (),
        )  # fmt: skip
        await self.webrtc.start()

    def _log_repair(self, report: RepairReport) -> None:
        if not report.outcomes:
            return
        logger.warning(
            "start-up repair: %d segment(s) repaired, %d missing, %d quarantined",
            report.repaired,
            report.missing,
            report.quarantined,
        )
        for outcome in report.outcomes:
            logger.info("repair: %s %s: %s", outcome.action, outcome.path, outcome.detail)
        assert self.bus is not None
        self.bus.publish(
            RecordingRepaired(
                repaired=report.repaired, missing=report.missing, quarantined=report.quarantined
            )
        )

    def status_line(self) -> str:
        """What Vigil is doing, in one line (systemd's STATUS=, `systemctl status`)."""
        statuses = self.streams.statuses() if self.streams is not None else []
        plans = self.desired.current.streams if self.desired is not None else self.config.streams
        line = status_line(statuses, {plan.name for plan in plans if plan.record})
        return f"stopping: finishing open segments; {line}" if self._stopping else line

    async def stop(self) -> None:
        """Stop every service; each stream finishes its open segment first."""
        self._stopping = True
        if self._notifier is not None:
            self._notifier.stopping(self.status_line())
        if self.api is not None:
            await self.api.stop()
        if self.rtsp is not None:  # viewers and publishers go before the streams they watch
            rtsp, self.rtsp = self.rtsp, None
            await asyncio.wrap_future(self._glib.call(rtsp.stop))
        if self.webrtc is not None:  # viewers and publishers go before their streams
            await self.webrtc.stop()
        if self._exports is not None:  # the exports kept for re-use are only a cache
            await asyncio.to_thread(self._exports.sweep)
        if self.desired is not None:
            await self.desired.close()
        if self._detection_task is not None:
            self._detection_task.cancel()
        if self.detection is not None:  # before the streams: it takes frames off them
            await asyncio.get_running_loop().run_in_executor(self._media, self.detection.close)
        if self._keeper is not None:  # holds for the objects that left, while the DB is open
            await self._keeper.stop()
        if self.streams is not None:
            await self.streams.stop()
        if self.storage is not None:
            await self.storage.stop()
        if self._backups is not None:
            await self._backups.stop()
        if self.index is not None:
            await self.index.drain()
            await self.index.close_gaps()
        for pending in (self._simulator_start, self._gst_ready):
            # Started alongside the rest of start(): if start() failed before awaiting one, it
            # is cancelled or its outcome collected here (an outcome never read is logged).
            if pending is not None:
                pending.cancel()
                await asyncio.wait({pending})
                if not pending.cancelled():
                    pending.exception()
        if self._simulator is not None:
            await self._simulator.stop()
        if self._heartbeat is not None:
            await self._heartbeat.stop()  # before the GLib loop goes, or it would look hung
        self._glib.stop()
        if self.event_log is not None:
            await self.event_log.stop()  # last: it stores the stops and gaps published above
        if self.db is not None:
            await self._write(partial(self.db.close))
        self._media.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=True)
        if self._tracer_provider is not None:  # the stop's own spans are exported too
            from vigil.observability import tracing

            await asyncio.to_thread(tracing.shutdown, self._tracer_provider)
            self._tracer_provider = None
        if self._notifier is not None:
            self._notifier.close()


class _LiveRoots:
    """The recording roots as they are now (volumes come and go), for whoever serves files."""

    def __init__(self, pool: VolumePool) -> None:
        self._pool = pool

    def __iter__(self) -> Iterator[Path]:
        return iter(self._pool.roots())

    def __len__(self) -> int:
        return len(self._pool.roots())


def _import_all(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)
