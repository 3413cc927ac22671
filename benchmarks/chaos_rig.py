"""What the chaos benchmark sets up around Vigil: cameras in network namespaces of their own,
recording volumes that can be pulled, and a process that holds SQLite's write lock.

Every piece knows how to undo itself (`destroy`/`unmount`/`release`), and undoing twice or
undoing what was never made is harmless, so the benchmark's `finally` can call all of it.

Network: each camera group is one `vigil sim` inside a namespace made here (`ip netns add`),
joined to the host by a veth pair whose two ends get a /30 of 10.0.0.0/8 that no route of the
host uses. The namespace has no other interface and no default route: the cameras can talk to
the host end of their pair and nothing else, and Vigil reaches them only through that pair.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import READY_LINE, Simulator

SIM_PORT = 8554  # inside a namespace of our own every port is free


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """`count` /30 networks in 10.0.0.0/8 that overlap no route of the host (any table), so that
    the veth pairs never shadow a real network and traffic to them cannot go anywhere else."""
    routes = json.loads(run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    used = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or ":" in dst:
            continue
        try:
            used.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            continue
    found: list[ipaddress.IPv4Network] = []
    for second in range(243, 200, -1):  # unusual corners of 10/8 first
        block = ipaddress.IPv4Network(f"10.{second}.0.0/16")
        if any(block.overlaps(u) for u in used):
            continue
        found += list(block.subnets(new_prefix=30))[: count - len(found)]
        if len(found) == count:
            return found
    raise RuntimeError("no free 10.x.0.0/16 block for the camera namespaces")


class NamespacedSimulator(Simulator):
    """`vigil sim` run inside a network namespace, listening on the namespace's address."""

    def __init__(self, cameras: int, namespace: str, host: str, **kwargs: object) -> None:
        super().__init__(cameras, port=SIM_PORT, **kwargs)  # type: ignore[arg-type]
        self.namespace, self.host = namespace, host

    def url(self, index: int) -> str:
        return f"rtsp://{self.host}:{self.port}/cam{index}"

    def start(self, deadline_s: float = 60) -> float:
        """Start serving (a new session: a Ctrl-C on the terminal is the benchmark's to handle);
        returns the wall-clock time from which it serves."""
        deadline = time.monotonic() + deadline_s
        while True:
            command = [
                "ip", "netns", "exec", self.namespace, sys.executable, "-m", "vigil", "sim",
                "--cameras", str(self.cameras), "--host", self.host, "--port", str(self.port),
                "--size", self.size, "--fps", str(self.fps), "--bitrate", str(self.bitrate_kbit),
                "--gop", str(self.fps),
            ]  # fmt: skip
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True,
            )  # fmt: skip
            assert self.process.stdout is not None
            if self.process.stdout.readline().strip() == READY_LINE:
                return time.time()
            self.stop()  # the port it held a moment ago may not be free yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator in {self.namespace} did not start")
            time.sleep(0.5)


@dataclass
class CameraGroup:
    """Cameras `first`…`first + count - 1` (cam numbers in Vigil), served by one simulator in
    namespace `namespace`; `cut` takes the cameras' link down, as a pulled cable would."""

    index: int
    first: int
    count: int
    subnet: ipaddress.IPv4Network
    tag: str  # unique per benchmark process: several runs on one box never collide
    size: str
    fps: int
    bitrate_kbit: int
    made: bool = False
    sim: NamespacedSimulator = field(init=False)

    def __post_init__(self) -> None:
        self.namespace = f"vigil-chaos-{self.tag}-g{self.index}"
        self.host_if, self.camera_if = f"vc{self.tag}g{self.index}h", f"vc{self.tag}g{self.index}c"
        host, camera = list(self.subnet.hosts())
        self.host_ip, self.camera_ip = str(host), str(camera)
        self.sim = NamespacedSimulator(self.count, self.namespace, self.camera_ip, size=self.size,
                                       fps=self.fps, bitrate_kbit=self.bitrate_kbit)  # fmt: skip

    @property
    def streams(self) -> list[str]:
        return [f"cam{n}" for n in range(self.first, self.first + self.count)]

    def url(self, stream: str) -> str:
        return self.sim.url(int(stream.removeprefix("cam")) - self.first + 1)

    def create(self) -> None:
        prefix = self.subnet.prefixlen
        self.made = True  # from here on, destroy() has something to undo
        run("ip", "netns", "add", self.namespace)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.camera_if,
            "netns", self.namespace)  # fmt: skip
        run("ip", "addr", "add", f"{self.host_ip}/{prefix}", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "netns", "exec", self.namespace)
        run(*inside, "ip", "addr", "add", f"{self.camera_ip}/{prefix}", "dev", self.camera_if)
        run(*inside, "ip", "link", "set", self.camera_if, "up")
        run(*inside, "ip", "link", "set", "lo", "up")

    def cut(self) -> float:
        run("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.camera_if, "down")
        return time.time()

    def restore(self, check: bool = True) -> float:
        run("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.camera_if, "up",
            check=check)  # fmt: skip
        return time.time()

    def destroy(self) -> None:
        self.sim.stop()
        if not self.made:
            return
        run("ip", "link", "del", self.host_if, check=False)  # its peer goes with it
        run("ip", "netns", "del", self.namespace, check=False)
        self.made = False


@dataclass
class Disk:
    """A tmpfs "disk" mounted at a hidden `.diskN` and bind-mounted at `volumeN`, where Vigil
    looks: unmounting the bind is a real unmount for Vigil, and the disk keeps its files for
    the next bind (tests/support/mounts.py does the same)."""

    base: Path
    index: int
    size_mib: int
    mounted: list[Path] = field(default_factory=list)

    @property
    def disk(self) -> Path:
        return self.base / f".disk{self.index}"

    @property
    def slot(self) -> Path:
        return self.base / f"volume{self.index}"

    def mount(self) -> None:
        self.disk.mkdir(parents=True, exist_ok=True)
        run("mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m,mode=0755", "tmpfs",
            str(self.disk))  # fmt: skip
        self.mounted.append(self.disk)
        self.put_back()

    def pull(self) -> float:
        """`umount -l` the slot, as a disk yanked out without ejecting it."""
        run("umount", "-l", str(self.slot))
        self.mounted.remove(self.slot)
        return time.time()

    def put_back(self) -> float:
        self.slot.mkdir(parents=True, exist_ok=True)
        run("mount", "--bind", str(self.disk), str(self.slot))
        self.mounted.append(self.slot)
        return time.time()

    @property
    def pulled(self) -> bool:
        return self.slot not in self.mounted

    def unmount(self) -> None:
        for path in reversed(self.mounted):
            for _ in range(10):  # a mount still busy (Vigil just killed) is then detached lazily
                if (
                    not os.path.ismount(path)
                    or run("umount", str(path), check=False).returncode == 0
                ):
                    break
                time.sleep(0.3)
            else:
                run("umount", "-l", str(path), check=False)
        self.mounted.clear()


LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print("released", flush=True)
"""


@dataclass
class LockHolder:
    """Another process that takes SQLite's write lock on Vigil's database (`BEGIN IMMEDIATE`,
    as any writer would) and keeps it for a while: every write of Vigil's waits, then fails
    after its busy timeout."""

    db: Path
    process: subprocess.Popen[str] | None = None

    def hold(self, seconds: float) -> tuple[float, float]:
        """Hold the lock `seconds`; returns (taken at, released at), wall clock."""
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(self.db), f"{seconds:.3f}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "locked":
            raise RuntimeError(f"could not lock {self.db}: {self.process.communicate()[1]}")
        taken = time.time()
        self.process.stdout.readline()
        released = time.time()
        self.release()
        return taken, released

    def release(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.communicate()
