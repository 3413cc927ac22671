"""Real faults for tests: cameras that stop, come back changed, flap, or sit behind a network
link we can cut (a network namespace of our own, joined by a veth pair)."""

from __future__ import annotations

import fcntl
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.media import READY_LINE, free_port


@dataclass
class SimCamera:
    """`vigil sim` as a camera that can be stopped, restarted and changed (same port)."""

    cameras: int = 1
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    size: str = "640x360"
    fps: int = 25
    gop: int | None = 25
    extra: tuple[str, ...] = ()
    netns: str | None = None
    process: subprocess.Popen[str] | None = None

    def url(self, index: int = 1, userinfo: str = "") -> str:
        prefix = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{prefix}{self.host}:{self.port}/cam{index}"

    def start(self, **changes: object) -> float:
        """Start serving (with `changes` to the settings); returns when it serves (monotonic)."""
        for key, value in changes.items():
            setattr(self, key, value)
        command = [
            sys.executable, "-m", "vigil", "sim", "--cameras", str(self.cameras),
            "--port", str(self.port), "--host", self.host, "--size", self.size,
            "--fps", str(self.fps), "--bitrate", "600", *self.extra,
        ]  # fmt: skip
        if self.gop:
            command += ["--gop", str(self.gop)]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        deadline = time.monotonic() + 30
        while True:  # the port may still be held for a moment by the process just stopped
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            if line.strip() == READY_LINE:
                return time.monotonic()
            self._reap()
            if time.monotonic() > deadline:
                raise RuntimeError("simulator did not start within 30 s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the camera (its process ends: connections are closed)."""
        if self.process is not None:
            self.process.terminate()
            self._reap()

    def _reap(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def camera(**settings: object) -> Iterator[SimCamera]:
    """A started SimCamera, stopped at the end."""
    cam = SimCamera(**settings)  # type: ignore[arg-type]
    cam.start()
    try:
        yield cam
    finally:
        cam.stop()


@contextmanager
def flapping(cam: SimCamera, period: float) -> Iterator[None]:
    """Stop and restart `cam` every `period` seconds in the background while inside."""
    done = threading.Event()

    def flap() -> None:
        while not done.is_set():
            cam.stop()
            if done.wait(period):
                return
            cam.start()
            done.wait(period)

    thread = threading.Thread(target=flap, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(40)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Link:
    """A network namespace joined to ours by a veth pair, with a cable we can pull."""

    name: str
    host_if: str
    host_address: str
    ns_address: str

    def down(self) -> None:
        """Cut the link without closing any socket (packets just stop)."""
        _ip("link", "set", self.host_if, "down")

    def up(self) -> None:
        """Plug it back in."""
        _ip("link", "set", self.host_if, "up")
        _ip("addr", "replace", f"{self.host_address}/24", "dev", self.host_if)


# Tests running at the same time (pytest-xdist workers, another checkout's run) each get a
# /24 of their own: two veths with one subnet would route one test's packets to the other's
# namespace. The subnet is chosen and its address assigned under this lock, so the next one
# chosen sees it taken.
_SUBNET_LOCK = Path(tempfile.gettempdir()) / "vigil-tests-netns.lock"


def _subnets_in_use() -> set[int]:
    """Third octets of the 10.203.X.0/24 subnets some interface holds an address in now."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True,
                           text=True, timeout=10).stdout  # fmt: skip
    return {int(x) for x in re.findall(r"inet 10\.203\.(\d+)\.", shown)}


@contextmanager
def network_namespace() -> Iterator[Link]:
    """A namespace reachable from here at 10.203.X.2 (we are 10.203.X.1, X free), removed at
    the end."""
    tag = uuid.uuid4().hex[:6]
    peer = f"vn{tag}"
    with _SUBNET_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        free = sorted(set(range(1, 255)) - _subnets_in_use())
        assert free, "every 10.203.X.0/24 is in use: namespaces left over by killed tests?"
        subnet = random.choice(free)
        link = Link(name=f"vigil-{tag}", host_if=f"vh{tag}",
                    host_address=f"10.203.{subnet}.1", ns_address=f"10.203.{subnet}.2")  # fmt: skip
        _ip("netns", "add", link.name)
        try:
            _ip("link", "add", link.host_if, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", link.name)
            _ip("addr", "add", f"{link.host_address}/24", "dev", link.host_if)
        except BaseException:
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", link.name], capture_output=True, timeout=10)
            raise
    try:
        _ip("link", "set", link.host_if, "up")
        _ip("netns", "exec", link.name, "ip", "addr", "add", f"{link.ns_address}/24", "dev", peer)
        _ip("netns", "exec", link.name, "ip", "link", "set", peer, "up")
        _ip("netns", "exec", link.name, "ip", "link", "set", "lo", "up")
        yield link
    finally:
        subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", link.name], capture_output=True, timeout=10)
