"""The built-in camera simulator, run beside Vigil as a child process (`vigil sim`).

A separate process keeps the simulator's encoder and sending off Vigil's own CPU accounting
and GIL, and makes the cameras as real as a camera on the network: Vigil reaches them over RTSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from vigil.config.simulator import SimulatorConfig

logger = logging.getLogger(__name__)

READY_LINE = "vigil-sim ready"


def simulator_command(config: SimulatorConfig, *, host: str = "127.0.0.1") -> list[str]:
    """The `vigil sim` command line for `config`."""
    command = [
        sys.executable, "-m", "vigil", "sim",
        "--cameras", str(config.cameras),
        "--port", str(config.port),
        "--host", host,
        "--codec", str(config.codec),
        "--size", f"{config.width}x{config.height}",
        "--fps", str(config.fps),
        "--bitrate", str(config.bitrate_kbit),
    ]  # fmt: skip
    if config.gop_frames:
        command += ["--gop", str(config.gop_frames)]
    if config.file is not None:
        command += ["--file", str(Path(config.file))]
    return command


class SimulatorProcess:
    """Starts `vigil sim`, waits until it serves, stops it with the service."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the simulator and wait for its ready line."""
        self._process = await asyncio.create_subprocess_exec(
            *simulator_command(self.config), stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self._process.stdout.readline()
                    if not line:
                        raise RuntimeError(
                            f"the simulator exited (code {await self._process.wait()})"
                        )
                    if line.decode().strip() == READY_LINE:
                        break
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.get_running_loop().create_task(self._discard_output())
        logger.info(
            "simulator: %d cameras at rtsp://127.0.0.1:%d/cam1 …",
            self.config.cameras,
            self.config.port,
        )

    async def _discard_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while await self._process.stdout.readline():
            pass

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate the simulator (SIGTERM, then SIGKILL)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None
