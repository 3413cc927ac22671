"""A real NOTIFY_SOCKET for tests: binds an AF_UNIX datagram socket and records what arrives."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class Notification:
    """One datagram: when it arrived (monotonic) and its KEY=value fields."""

    at: float
    fields: dict[str, str]


class NotifyListener:
    """Plays systemd's side of sd_notify on `address` (a path, or `@name` for abstract)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.settimeout(0.1)
        self._received: list[Notification] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-listener", daemon=True)

    def __enter__(self) -> NotifyListener:
        target = b"\0" + self.address[1:].encode() if self.address.startswith("@") else self.address
        self._socket.bind(target)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._lock:
                self._received.append(Notification(time.monotonic(), fields))

    def received(self) -> list[Notification]:
        """Everything received so far, in order."""
        with self._lock:
            return list(self._received)

    def having(self, key: str, value: str | None = None) -> list[Notification]:
        """The notifications carrying `key` (with `value`, if given)."""
        return [n for n in self.received() if key in n.fields and value in (None, n.fields[key])]

    def statuses(self) -> list[str]:
        """Every STATUS= text received, in order."""
        return [n.fields["STATUS"] for n in self.having("STATUS")]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until `predicate()` holds; fail naming `what` and what arrived."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s; got {self._summary()}")
            time.sleep(0.05)

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """`wait_for` for the event loop (polls without blocking it)."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s; got {self._summary()}") from None

    def _summary(self) -> list[dict[str, str]]:
        return [n.fields for n in self.received()][-20:]
