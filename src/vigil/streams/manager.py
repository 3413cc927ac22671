"""The stream manager: one supervisor per configured stream, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from vigil.config.diff import ChangePlan
from vigil.config.resolve import StreamPlan
from vigil.events import EventBus
from vigil.media.relay import RelayHub
from vigil.recording.segments import SegmentIndex
from vigil.recording.volumes import VolumePool
from vigil.streams.status import StreamStatus
from vigil.streams.supervisor import StreamSupervisor

logger = logging.getLogger(__name__)


class StreamManager:
    """Holds the desired set of streams and their supervisors."""

    def __init__(
        self,
        *,
        bus: EventBus,
        index: SegmentIndex,
        media_executor: Executor,
        volumes: VolumePool | None = None,
        relays: RelayHub | None = None,
    ) -> None:
        self._bus = bus
        self._relays = relays
        self._volumes = volumes
        self._index = index
        self._executor = media_executor
        self._supervisors: dict[str, StreamSupervisor] = {}

    def start(self, plans: list[StreamPlan]) -> None:
        """Start a supervisor for every enabled plan (streams already running are left alone)."""
        for plan in plans:
            if not plan.enabled or plan.name in self._supervisors:
                continue
            supervisor = StreamSupervisor(
                plan, bus=self._bus, index=self._index, media_executor=self._executor,
                volumes=self._volumes, relays=self._relays,
            )  # fmt: skip
            self._supervisors[plan.name] = supervisor
            supervisor.start()

    async def stop_stream(self, name: str) -> None:
        """Stop one stream (finishing its segment)."""
        supervisor = self._supervisors.pop(name, None)
        if supervisor is not None:
            await supervisor.stop()

    async def restart(self, plan: StreamPlan) -> None:
        """Stop the stream called `plan.name` (if running) and start it again from `plan`."""
        await self.stop_stream(plan.name)
        self.start([plan])

    async def apply(self, plan: ChangePlan) -> None:
        """Carry out a change plan: stop removed streams, restart changed ones (alone), start
        added ones. Streams not in the plan are not touched."""
        results = await asyncio.gather(
            *(self.stop_stream(name) for name in plan.removed),
            *(self.restart(changed) for changed in plan.changed),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("error while applying a configuration change", exc_info=result)
        self.start(list(plan.added))

    async def stop(self) -> None:
        """Stop every stream concurrently, each finishing its open segment."""
        names = list(self._supervisors)
        results = await asyncio.gather(
            *(self.stop_stream(name) for name in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s: error while stopping", name, exc_info=result)

    async def rotate(self, names: set[str]) -> None:
        """Have these streams start their next segment at the next keyframe (placed anew)."""
        supervisors = [s for name, s in self._supervisors.items() if name in names]
        results = await asyncio.gather(
            *(s.rotate_recording() for s in supervisors), return_exceptions=True
        )
        for supervisor, result in zip(supervisors, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s: cannot rotate", supervisor.plan.name, exc_info=result)

    def statuses(self) -> list[StreamStatus]:
        """Every supervised stream's status, in configuration order."""
        return [supervisor.status for supervisor in self._supervisors.values()]

    def status(self, name: str) -> StreamStatus | None:
        """One stream's status, or None if it is not supervised."""
        supervisor = self._supervisors.get(name)
        return supervisor.status if supervisor else None

    async def snapshot(self, name: str) -> bytes | None:
        """The stream's latest keyframe as a JPEG; None if not streaming or none seen yet."""
        supervisor = self._supervisors.get(name)
        return await supervisor.snapshot() if supervisor else None
