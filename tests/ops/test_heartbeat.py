"""The heartbeat with a real GLib main-loop thread: WATCHDOG=1 stops while that loop is blocked.

Timings are never asserted: messages are looked for (or their absence checked) in windows wide
enough for a loaded machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest

from tests.ops.notify_listener import NotifyListener
from vigil.media.mainloop import GLibLoopThread
from vigil.ops import systemd
from vigil.ops.systemd import GLIB_NOT_RESPONDING, Notifier, ServiceHeartbeat

T = TypeVar("T")
INTERVAL = 0.4  # the watchdog timeout: a tick every 0.2 s


@asynccontextmanager
async def running_glib() -> AsyncIterator[GLibLoopThread]:
    glib = GLibLoopThread(name="glib-test")
    glib.start()
    try:
        yield glib
    finally:
        await asyncio.to_thread(glib.stop)


def block(glib: GLibLoopThread, seconds: float) -> tuple[threading.Event, list[float]]:
    """Occupy the GLib thread for `seconds`; the event is set (time noted) when it starts."""
    started = threading.Event()
    began: list[float] = []

    def hog() -> None:
        began.append(time.monotonic())
        started.set()
        time.sleep(seconds)

    glib.call(hog)
    return started, began


async def test_watchdog_is_withheld_while_the_glib_loop_is_blocked(
    notify_socket: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(notify_socket.address)
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, INTERVAL, lambda: "1/1 streams up")
        notifier.ready()
        heartbeat.start()
        try:
            await notify_socket.until(
                lambda: len(notify_socket.having("WATCHDOG", "1")) >= 3, 10, "3 WATCHDOG=1"
            )
            assert notify_socket.statuses() == ["1/1 streams up"]
            assert heartbeat.glib_responding

            started, began = block(glib, 3.0)
            assert await asyncio.to_thread(started.wait, 10)
            await asyncio.sleep(3.0 + 0.2)  # the GLib thread is busy until began[0] + 3.0
            window = (began[0] + 0.5, began[0] + 2.5)
            during = [n for n in notify_socket.having("WATCHDOG") if window[0] <= n.at <= window[1]]
            assert during == [], "WATCHDOG=1 sent while the GLib loop was blocked"
            assert caplog.text.count(GLIB_NOT_RESPONDING) == 1

            unblocked = began[0] + 3.0
            await notify_socket.until(
                lambda: any(n.at > unblocked for n in notify_socket.having("WATCHDOG")),
                10,
                "WATCHDOG=1 after the GLib loop recovered",
            )
            assert "answers again" in caplog.text
            assert heartbeat.glib_responding
            notifier.stopping()
        finally:
            await heartbeat.stop()
    stopped = time.monotonic()
    await notify_socket.until(lambda: bool(notify_socket.having("STOPPING", "1")), 5, "STOPPING")
    await asyncio.sleep(INTERVAL * 2)
    assert not [n for n in notify_socket.having("WATCHDOG") if n.at > stopped + 0.1]
    assert notify_socket.received()[0].fields == {"READY": "1"}
    notifier.close()


async def test_status_is_sent_when_it_changes_and_only_then(
    notify_socket: NotifyListener,
) -> None:
    notifier = Notifier(notify_socket.address)
    text = ["0/2 streams up"]
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, INTERVAL, lambda: text[0])
        heartbeat.start()
        try:
            await notify_socket.until(
                lambda: len(notify_socket.having("WATCHDOG")) >= 5, 10, "5 WATCHDOG=1"
            )
            assert notify_socket.statuses() == ["0/2 streams up"]
            text[0] = "2/2 streams up"
            await notify_socket.until(
                lambda: notify_socket.statuses() == ["0/2 streams up", "2/2 streams up"],
                10,
                "the new STATUS",
            )
        finally:
            await heartbeat.stop()
    notifier.close()


async def test_without_a_watchdog_status_is_still_refreshed(
    notify_socket: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd, "STATUS_REFRESH_S", 0.2)
    notifier = Notifier(notify_socket.address)
    text = ["starting"]
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, None, lambda: text[0])
        heartbeat.start()
        try:
            await notify_socket.until(
                lambda: notify_socket.statuses() == ["starting"], 10, "STATUS"
            )
            text[0] = "1/1 streams up"
            await notify_socket.until(
                lambda: notify_socket.statuses()[-1:] == ["1/1 streams up"], 10, "new STATUS"
            )
        finally:
            await heartbeat.stop()
    assert notify_socket.having("WATCHDOG") == []
    notifier.close()


async def test_a_failing_status_is_logged_once_and_the_watchdog_goes_on(
    notify_socket: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> str:
        raise RuntimeError("no status today")

    notifier = Notifier(notify_socket.address)
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, INTERVAL, broken)
        heartbeat.start()
        try:
            await notify_socket.until(
                lambda: len(notify_socket.having("WATCHDOG")) >= 4, 10, "4 WATCHDOG=1"
            )
        finally:
            await heartbeat.stop()
    assert caplog.text.count("cannot build the systemd status line") == 1
    notifier.close()


async def test_a_blocked_event_loop_is_logged(
    notify_socket: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(notify_socket.address)
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, INTERVAL, lambda: "up")
        heartbeat.start()
        try:
            await notify_socket.until(lambda: bool(notify_socket.having("WATCHDOG")), 10, "ping")
            time.sleep(1.5)  # blocks the event loop on purpose: what a hung coroutine does
            count = len(notify_socket.having("WATCHDOG"))
            await notify_socket.until(
                lambda: len(notify_socket.having("WATCHDOG")) > count, 10, "ping after"
            )
        finally:
            await heartbeat.stop()
    assert "the asyncio event loop was blocked for" in caplog.text
    notifier.close()


class _UnreachableLoop:
    """A bridge whose submissions fail (what a GLib thread that is gone looks like)."""

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        raise RuntimeError("GLib thread is gone")


async def test_an_unreachable_glib_loop_gets_no_watchdog(
    notify_socket: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(notify_socket.address)
    heartbeat = ServiceHeartbeat(notifier, _UnreachableLoop(), INTERVAL, lambda: "up")
    with caplog.at_level(logging.ERROR, logger="vigil.ops.systemd"):
        heartbeat.start()
        try:
            await notify_socket.until(lambda: notify_socket.statuses() == ["up"], 10, "STATUS")
            await asyncio.sleep(INTERVAL * 3)
        finally:
            await heartbeat.stop()
    assert notify_socket.having("WATCHDOG") == []
    assert caplog.text.count(GLIB_NOT_RESPONDING) == 1
    assert caplog.text.count("cannot submit a heartbeat") == 1  # not once per tick
    assert not heartbeat.glib_responding
    notifier.close()


async def test_start_and_stop_are_idempotent(notify_socket: NotifyListener) -> None:
    notifier = Notifier(notify_socket.address)
    async with running_glib() as glib:
        heartbeat = ServiceHeartbeat(notifier, glib, INTERVAL, lambda: "up")
        await heartbeat.stop()  # never started
        heartbeat.start()
        heartbeat.start()
        await notify_socket.until(lambda: bool(notify_socket.having("WATCHDOG")), 10, "WATCHDOG")
        await heartbeat.stop()
        await heartbeat.stop()
        heartbeat.start()  # and again after a stop
        count = len(notify_socket.having("WATCHDOG"))
        await notify_socket.until(
            lambda: len(notify_socket.having("WATCHDOG")) > count, 10, "WATCHDOG after restart"
        )
        await heartbeat.stop()
    # two starts in a row made one task: one STATUS per run
    assert notify_socket.statuses() == ["up", "up"]
    notifier.close()


def test_the_interval_must_be_positive() -> None:
    notifier = Notifier("@unused")
    with pytest.raises(ValueError, match="positive"):
        ServiceHeartbeat(notifier, _UnreachableLoop(), 0, lambda: "")
    notifier.close()
