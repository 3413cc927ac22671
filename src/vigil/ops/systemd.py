"""systemd integration: the sd_notify protocol, and the heartbeat that feeds systemd's watchdog.

Under `Type=notify` systemd hands Vigil a datagram socket in `NOTIFY_SOCKET` and, with
`WatchdogSec=`, the watchdog timeout in `WATCHDOG_USEC`. Vigil says `READY=1` once its streams are
started, keeps a one-line `STATUS=`, sends `WATCHDOG=1` only while both the asyncio loop and the
GLib main-loop thread answer, and `STOPPING=1` when it shuts down.

The protocol is written here rather than taken from PyPI: it is one `sendto` of `KEY=value` lines
on an `AF_UNIX`/`SOCK_DGRAM` socket. `sdnotify` is unmaintained since 2017; `systemd-watchdog`
sends on a blocking socket and lets send errors propagate (a heartbeat must never block or raise),
and calls its own abstract-namespace handling untested; `systemd-python`/`cysystemd` are
C extensions that need libsystemd's headers to build. This module never blocks (non-blocking
socket: a full queue drops the message) and never raises on a send error (logged once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

GLIB_NOT_RESPONDING = (
    "GLib main loop not responding; withholding the watchdog so systemd restarts Vigil"
)
# Without a watchdog, STATUS is still refreshed this often (seconds); with one, at least as often.
STATUS_REFRESH_S = 5.0
# The event loop running this late is worth a warning (it is a hang in the making).
LOOP_LAG_WARNING_S = 1.0
LOOP_LAG_LOG_EVERY_S = 30.0
STATUS_MAX_CHARS = 300
UNHEALTHY_STATES = ("stalled", "reconnecting", "failed")


class Notifier:
    """Sends sd_notify messages to systemd's notification socket.

    Safe to call from any thread. Sending never blocks and never raises: a failed send is
    logged at warning once per run of failures and reported by the return value.
    """

    def __init__(self, address: str) -> None:
        """`address` as systemd writes `NOTIFY_SOCKET`: a path, or `@name` (abstract namespace)."""
        self._address = address
        self._target: str | bytes = (
            b"\0" + address[1:].encode() if address.startswith("@") else address
        )
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier systemd asked for, or None when `NOTIFY_SOCKET` is unset (not a unit)."""
        address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        if not address:
            return None
        if not address.startswith(("/", "@")):
            # systemd ≥ 254 may hand out vsock:… addresses (VMs); Vigil runs on the host.
            logger.warning("NOTIFY_SOCKET=%s is not a Unix socket: not notifying systemd", address)
            return None
        return cls(address)

    @property
    def address(self) -> str:
        """The socket address as given (`@` for the abstract namespace)."""
        return self._address

    def notify(self, **fields: str | int) -> bool:
        """Send one message of `KEY=value` lines, e.g. `notify(READY=1, STATUS="…")`.

        Values are flattened to one line. Returns whether the message was handed to the socket.
        """
        payload = "".join(f"{key}={_one_line(str(value))}\n" for key, value in fields.items())
        try:
            self._socket.sendto(payload.encode(), self._target)
        except OSError as error:  # includes BlockingIOError (queue full) and a closed socket
            if not self._failing:
                self._failing = True
                logger.warning(
                    "cannot notify systemd at %s: %s (further failures are not logged)",
                    self._address,
                    error,
                )
            return False
        if self._failing:
            self._failing = False
            logger.info("notifying systemd at %s works again", self._address)
        return True

    def ready(self, status: str | None = None) -> bool:
        """`READY=1`: start-up is complete (and systemd's watchdog starts counting)."""
        return self.notify(READY=1) if status is None else self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """`STATUS=`: the one line `systemctl status` shows."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """`STOPPING=1`: shutdown has begun (systemd's stop timeout applies from here)."""
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=status)

    def watchdog(self) -> bool:
        """`WATCHDOG=1`: the keep-alive ping."""
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket (idempotent); later sends fail quietly."""
        self._socket.close()


def watchdog_interval_from_environment(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """systemd's watchdog timeout in seconds, or None when there is none for this process.

    Like sd_watchdog_enabled(3): `WATCHDOG_USEC` must be a positive integer, and when
    `WATCHDOG_PID` is set it must name this process (a child that inherited the environment
    must not feed its parent's watchdog).
    """
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID", "")
    if pid_text:
        own_pid = os.getpid() if pid is None else pid
        if not pid_text.isdigit() or int(pid_text) != own_pid:
            return None
    if not usec_text.isdigit() or int(usec_text) == 0:
        logger.warning("ignoring WATCHDOG_USEC=%r: not a positive integer", usec_text)
        return None
    return int(usec_text) / 1_000_000


class MainLoopThread(Protocol):
    """What the heartbeat needs of the GLib thread (`vigil.media.mainloop.GLibLoopThread`)."""

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on that thread; the future completes when it has run."""
        ...


class StreamHealth(Protocol):
    """What the status line needs of a stream's status (`vigil.streams.StreamStatus`)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def reason(self) -> str: ...


def status_line(streams: Iterable[StreamHealth], recording: Collection[str]) -> str:
    """One line for `systemctl status`, e.g. `3/4 streams up, 3 recording, 1 with errors
    (cam2 reconnecting: Failed to connect)`; `recording` names the streams configured to record.
    """
    items = list(streams)
    up = [s for s in items if s.state == "streaming"]
    # Streams that cannot record for lack of space (`StreamStatus.recording_blocked`).
    blocked = [s for s in up if s.name in recording and getattr(s, "recording_blocked", None)]
    recorded = sum(1 for s in up if s.name in recording) - len(blocked)
    unhealthy = [s for s in items if s.state in UNHEALTHY_STATES]
    line = f"{len(up)}/{len(items)} streams up, {recorded} recording, "
    if blocked:
        line += f"{len(blocked)} blocked (no space), "
    if not unhealthy:
        return line + "no errors"
    first = unhealthy[0]
    more = ", …" if len(unhealthy) > 1 else ""
    return line + f"{len(unhealthy)} with errors ({first.name} {first.state}: {first.reason}{more})"


class ServiceHeartbeat:
    """Feeds systemd's watchdog while both the asyncio loop and the GLib loop answer.

    Every tick (`interval / 2`, at most `STATUS_REFRESH_S`) runs on the asyncio loop, so the
    tick running is the asyncio side's answer (its lateness is measured and logged). The GLib
    side answers a no-op submitted with `glib.call`; it has one tick to do so. `WATCHDOG=1` is
    sent only when both answered: a hung GLib loop stops the pings, and systemd restarts Vigil
    after `WatchdogSec`. Checking goes on, and pings resume if the loop recovers. `STATUS=` is
    sent whenever `status()` changes. With `interval=None` (no watchdog) only STATUS is sent.

    The no-op goes out at the end of one tick and is looked at in the next, so the GLib loop
    gets a whole tick (`interval / 2`) to answer while pings stay one tick apart; waiting for it
    within the tick would let pings drift up to a whole `interval` apart on a slow loop.
    """

    def __init__(
        self,
        notifier: Notifier,
        glib: MainLoopThread,
        interval: float | None,
        status: Callable[[], str],
    ) -> None:
        """`interval` is the watchdog timeout in seconds (`watchdog_interval_from_environment`)."""
        if interval is not None and interval <= 0:
            raise ValueError(f"watchdog interval must be positive, not {interval}")
        self._notifier = notifier
        self._glib = glib
        self._interval = interval
        self._status = status
        self._period = STATUS_REFRESH_S if interval is None else min(interval / 2, STATUS_REFRESH_S)
        self._task: asyncio.Task[None] | None = None
        self._glib_responding = True
        self._submit_failed = False

    @property
    def glib_responding(self) -> bool:
        """False from the tick the GLib loop missed its deadline until it answers again."""
        return self._glib_responding

    def start(self) -> None:
        """Start the heartbeat task on the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="systemd-heartbeat")

    async def stop(self) -> None:
        """Cancel the heartbeat and wait for it to end (idempotent). Sends nothing more."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("systemd heartbeat failed", exc_info=task.exception())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        probe: asyncio.Future[None] | None = None
        probe_sent = 0.0
        last_status: str | None = None
        status_failed = False
        last_lag_log = -LOOP_LAG_LOG_EVERY_S
        due = loop.time()
        try:
            while True:
                now = loop.time()
                lag = now - due
                if lag > LOOP_LAG_WARNING_S and now - last_lag_log >= LOOP_LAG_LOG_EVERY_S:
                    last_lag_log = now
                    logger.warning("the asyncio event loop was blocked for %.1f s", lag)
                if probe is None:
                    probe, probe_sent = self._probe_glib(), now
                if probe is not None:
                    # The probe went out a tick ago and has normally long answered: no wait.
                    remaining = probe_sent + self._period - loop.time()
                    await asyncio.wait({probe}, timeout=max(0.0, remaining))
                answered = probe is not None and probe.done() and not probe.cancelled()
                if answered and probe is not None and probe.exception() is not None:
                    logger.debug("the GLib heartbeat no-op raised", exc_info=probe.exception())
                self._glib_answered(answered, since=probe_sent)
                if self._glib_responding and self._interval is not None:
                    self._notifier.watchdog()
                try:
                    text = self._status()
                    status_failed = False
                except Exception:
                    if not status_failed:
                        logger.exception("cannot build the systemd status line")
                    status_failed = True
                else:
                    if text != last_status:
                        last_status = text
                        self._notifier.status(text)
                if probe is None or probe.done():
                    probe, probe_sent = self._probe_glib(), loop.time()
                due += self._period
                if due < loop.time():  # fell behind (blocked loop): no burst of catch-up ticks
                    due = loop.time() + self._period
                await asyncio.sleep(due - loop.time())
        finally:
            if probe is not None:
                probe.cancel()

    def _probe_glib(self) -> asyncio.Future[None] | None:
        """Submit a no-op to the GLib loop; None if even submitting failed (retried next tick)."""
        try:
            probe = asyncio.wrap_future(self._glib.call(_no_op))
        except Exception:
            if not self._submit_failed:
                logger.exception("cannot submit a heartbeat to the GLib main loop")
            self._submit_failed = True
            return None
        self._submit_failed = False
        return probe

    def _glib_answered(self, answered: bool, since: float) -> None:
        if answered and not self._glib_responding:
            self._glib_responding = True
            silent = asyncio.get_running_loop().time() - since
            logger.warning(
                "GLib main loop answers again after %.1f s%s",
                silent,
                "; watchdog resumed" if self._interval is not None else "",
            )
        elif not answered and self._glib_responding:
            self._glib_responding = False
            if self._interval is not None:
                logger.error(GLIB_NOT_RESPONDING)
            else:
                logger.error("GLib main loop not responding (no systemd watchdog to restart Vigil)")


def _no_op() -> None:
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= STATUS_MAX_CHARS else flat[: STATUS_MAX_CHARS - 1] + "…"
