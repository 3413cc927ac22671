"""Desired state: the configuration file plus the API's overlay, reconciled into the streams.

Every change — a file edit, `POST /config/reload`, a stream created, changed, started or
stopped through the API — goes the same way: build the new effective configuration, validate
it (nothing is stored or applied if it is invalid), persist the API's part, diff it against
what runs, and apply only the difference. Unchanged streams are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter

from vigil.config.diff import ChangePlan, plan_changes
from vigil.config.errors import ConfigError, validate_as
from vigil.config.loader import load_config
from vigil.config.overlay import Merged, Origin, OverlayEntry, merge
from vigil.config.resolve import ResolvedConfig, resolve
from vigil.config.root import VigilConfig
from vigil.config.streams import StreamConfig
from vigil.events import ConfigApplied, ConfigRejected, EventBus
from vigil.observability.tracing import span
from vigil.store.overlay import OverlayStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONFIG_CHANGES = Counter(
    "vigil_config_changes",
    "Configuration changes by source (file, reload, api) and result (applied, rejected).",
    ["source", "result"],
)


class StreamExistsError(ValueError):
    """A stream of that name (ignoring case) is already configured."""


class StreamNotFoundError(LookupError):
    """No stream of that name is configured."""


class Reconciler(Protocol):
    """What applies a change plan (the stream manager)."""

    async def apply(self, plan: ChangePlan) -> None: ...


@dataclass(frozen=True)
class ConfiguredStream:
    """A stream as configured: its effective entry and where that entry comes from."""

    config: StreamConfig
    origin: Origin


Writer = Callable[[Callable[[], T]], Awaitable[T]]


class DesiredState:
    """Holds the file's configuration and the API overlay; applies every change minimally."""

    def __init__(
        self,
        *,
        file_config: VigilConfig,
        config_path: Path | None,
        base_dir: Path,
        env: Mapping[str, str] | None,
        store: OverlayStore,
        write: Writer[Any],
        bus: EventBus,
    ) -> None:
        self._file_config = file_config
        self.config_path = config_path
        self._base_dir = base_dir
        self._env = env
        self._store = store
        self._write = write
        self._bus = bus
        self._overlay: dict[str, OverlayEntry] = {}
        self._merged = Merged(file_config, {s.name: Origin.FILE for s in file_config.streams}, ())
        self.current: ResolvedConfig = resolve(file_config, base_dir=base_dir)
        self._reconciler: Reconciler | None = None
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.overlay_problem: str | None = None

    # -- start-up ---------------------------------------------------------------------------

    async def load(self) -> ResolvedConfig:
        """Read the stored overlay and compute the configuration to start with.

        An overlay that no longer fits the file (a name now clashing, say) is not applied: Vigil
        starts with the file alone, logs why, and keeps the overlay for the operator to fix.
        """
        self._overlay = await self._write(self._store.load)
        try:
            self._merged = merge(self._file_config, self._overlay)
        except ConfigError as error:
            self.overlay_problem = str(error)
            logger.error("streams changed through the API cannot be applied (running the file "
                         "alone until fixed):\n%s", error)  # fmt: skip
        self.current = resolve(self._merged.config, base_dir=self._base_dir)
        return self.current

    def attach(self, reconciler: Reconciler) -> None:
        """Changes from now on are applied through `reconciler`."""
        self._reconciler = reconciler

    # -- reading ----------------------------------------------------------------------------

    def streams(self) -> list[ConfiguredStream]:
        """Every configured stream (enabled or not), in order, with its origin."""
        origins = self._merged.origins
        return [
            ConfiguredStream(stream, origins.get(stream.name, Origin.FILE))
            for stream in self._merged.config.streams
        ]

    def stream(self, name: str) -> ConfiguredStream | None:
        wanted = name.casefold()
        return next((s for s in self.streams() if s.config.name.casefold() == wanted), None)

    @property
    def effective(self) -> VigilConfig:
        return self._merged.config

    @property
    def deleted(self) -> tuple[str, ...]:
        """Streams of the file deleted through the API."""
        return self._merged.deleted

    # -- changes through the API ------------------------------------------------------------

    async def create(self, entry: dict[str, Any]) -> ConfiguredStream:
        """Add a stream (ConfigError if invalid, StreamExistsError if the name is taken)."""
        stream = _validated(entry)
        async with self._lock:
            if self.stream(stream.name) is not None:
                raise StreamExistsError(f"a stream named '{stream.name}' already exists")
            await self._change({stream.name.casefold(): _overlay_of(stream)})
        return self._require(stream.name)

    async def update(self, name: str, changes: dict[str, Any]) -> ConfiguredStream:
        """Change some keys of a stream; `name` cannot change (delete and create instead)."""
        async with self._lock:
            current = self._require(name)
            entry = current.config.model_dump(mode="json", exclude_unset=True)
            entry["source"] = current.config.source  # dumps keep it; be explicit
            entry.update(changes)
            if str(entry.get("name", "")).casefold() != name.casefold():
                raise ConfigError.single("name", "a stream cannot be renamed; delete it and "
                                                 "create it under the new name")  # fmt: skip
            stream = _validated(entry)
            await self._change({name.casefold(): _overlay_of(stream)})
        return self._require(name)

    async def delete(self, name: str) -> None:
        """Remove a stream: forget it if the API added it, tombstone it if the file has it."""
        async with self._lock:
            current = self._require(name)
            key = name.casefold()
            in_file = any(s.name.casefold() == key for s in self._file_config.streams)
            await self._change({key: OverlayEntry(current.config.name, None) if in_file else None})

    async def reset(self, name: str) -> ConfiguredStream | None:
        """Drop the API's change of a stream: the file's entry applies again (None: gone)."""
        async with self._lock:
            if name.casefold() not in self._overlay:
                raise StreamNotFoundError(f"stream '{name}' has no change made through the API")
            await self._change({name.casefold(): None})
        return self.stream(name)

    async def replace_streams(self, entries: list[dict[str, Any]]) -> ChangePlan:
        """Make the configured streams exactly `entries` (PUT /config): what differs from the
        file is stored as the overlay. A source sent back masked (as GET shows it) keeps the
        stream's real source."""
        async with self._lock:
            streams = []
            for entry in entries:
                entry = dict(entry)
                current = self.stream(str(entry.get("name", "")))
                if current is not None and entry.get("source") == current.config.redacted_source():
                    entry["source"] = current.config.source
                streams.append(_validated(entry))
            file_streams = {s.name.casefold(): s for s in self._file_config.streams}
            overlay: dict[str, OverlayEntry] = {}
            wanted = set()
            for stream in streams:
                key = stream.name.casefold()
                if key in wanted:
                    raise ConfigError.single("streams", f"duplicate stream name '{stream.name}'")
                wanted.add(key)
                in_file = file_streams.get(key)
                if in_file is None or in_file != stream:
                    overlay[key] = _overlay_of(stream)
            for key, stream in file_streams.items():
                if key not in wanted:
                    overlay[key] = OverlayEntry(stream.name, None)
            merged = merge(self._file_config, overlay)
            new = resolve(merged.config, base_dir=self._base_dir)
            await self._write(partial(self._store.replace, overlay))
            self._overlay, self._merged = overlay, merged
            return await self._apply(new, "api")

    async def _change(self, changes: dict[str, OverlayEntry | None]) -> None:
        """Validate the overlay with `changes` (None = drop the key), persist it, apply it."""
        overlay = dict(self._overlay)
        for key, item in changes.items():
            if item is None:
                overlay.pop(key, None)
            else:
                overlay[key] = item
        merged = merge(self._file_config, overlay)  # ConfigError: nothing stored or applied
        new = resolve(merged.config, base_dir=self._base_dir)
        for key, item in changes.items():
            if item is None:
                await self._write(partial(self._store.remove, key))
            else:
                await self._write(partial(self._store.put, item.name, item.entry))
        self._overlay, self._merged = overlay, merged
        await self._apply(new, "api")

    # -- changes of the file ----------------------------------------------------------------

    async def reload(self, source: str = "reload") -> ChangePlan:
        """Read the file again and apply what changed. ConfigError (and a config.rejected
        event) if it is invalid: the running configuration stays."""
        async with self._lock:
            try:
                if self.config_path is None:
                    raise ConfigError.single("", "Vigil runs the built-in default configuration: "
                                                 "there is no file to reload")  # fmt: skip
                file_config = load_config(self.config_path, env=self._env)
                merged = merge(file_config, self._overlay)
                new = resolve(merged.config, base_dir=self._base_dir)
            except ConfigError as error:
                CONFIG_CHANGES.labels(source, "rejected").inc()
                logger.error("configuration rejected, the running one stays:\n%s", error)
                self._bus.publish(ConfigRejected(source=source, problems=tuple(
                    str(issue) for issue in error.issues)))  # fmt: skip
                raise
            self._file_config, self._merged = file_config, merged
            self.overlay_problem = None
            return await self._apply(new, source)

    async def _apply(self, new: ResolvedConfig, source: str) -> ChangePlan:
        plan = plan_changes(self.current, new)
        if plan.needs_restart:
            logger.warning("changed sections take effect at the next restart: %s",
                           ", ".join(plan.needs_restart))  # fmt: skip
        if self._reconciler is not None and not plan.empty:
            with span("config.apply", source=source, added=len(plan.added),
                      removed=len(plan.removed), changed=len(plan.changed)):  # fmt: skip
                await self._reconciler.apply(plan)
        self.current = new
        CONFIG_CHANGES.labels(source, "applied").inc()
        if not plan.empty:
            logger.info("configuration applied (%s): %d added, %d removed, %d changed", source,
                        len(plan.added), len(plan.removed), len(plan.changed))  # fmt: skip
        self._bus.publish(ConfigApplied(
            source=source, added=tuple(p.name for p in plan.added), removed=plan.removed,
            changed=tuple(p.name for p in plan.changed),
        ))  # fmt: skip
        return plan

    # -- watching the file ------------------------------------------------------------------

    def watch(self) -> None:
        """Reload whenever the file changes (editors that replace the file are handled)."""
        if self.config_path is None or self._watcher is not None:
            return
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="config-watch")

    async def _watch(self) -> None:
        from watchfiles import awatch

        assert self.config_path is not None
        path = self.config_path.resolve()
        # Watch the directory: an editor's save often replaces the file (a new inode). Only
        # the file itself counts (the directory may hold logs or the data).
        async for _changes in awatch(
            path.parent, recursive=False, debounce=300, step=100,
            watch_filter=lambda _change, changed: Path(changed).resolve() == path,
        ):  # fmt: skip
            with contextlib.suppress(ConfigError):
                await self.reload("file")

    async def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _require(self, name: str) -> ConfiguredStream:
        found = self.stream(name)
        if found is None:
            raise StreamNotFoundError(f"no stream named '{name}'")
        return found


def _validated(entry: dict[str, Any]) -> StreamConfig:
    return validate_as(StreamConfig, entry)


def _overlay_of(stream: StreamConfig) -> OverlayEntry:
    entry = stream.model_dump(mode="json", exclude_unset=True)
    entry["source"] = stream.source
    return OverlayEntry(stream.name, entry)
