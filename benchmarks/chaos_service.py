"""`vigil run` kept alive the way systemd keeps the packaged unit alive, so that the chaos
benchmark can kill it.

What systemd does for `Type=notify`, `Restart=always`, `WatchdogSec=`, `TimeoutStartSec=`
(packaging/systemd/vigil.service), played here: a notification socket in `NOTIFY_SOCKET`, the
watchdog period in `WATCHDOG_USEC`; whenever the process ends, for whatever reason, it is
started again `restart_s` later (exit code 2, an invalid configuration, is not restarted); no
`READY=1` within the start timeout, or no `WATCHDOG=1` for a watchdog period once ready, and it
is aborted (SIGABRT, as systemd does) and restarted. Every start, readiness and exit is kept
with its wall-clock time: the benchmark's timeline of when Vigil was up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.resilience import NotifyListener


class ServiceNotify(NotifyListener):
    """The notification socket of one Vigil process; also notes its last `WATCHDOG=1`."""

    def __init__(self, path: Path) -> None:
        self.last_watchdog: float | None = None
        super().__init__(path)

    def _on_line(self, key: str, value: str) -> None:
        if key == "WATCHDOG" and value == "1":
            self.last_watchdog = time.time()
        super()._on_line(key, value)


@dataclass(frozen=True)
class ServiceEvent:
    """`exec`, `ready`, `exit` (detail: exit code or signal), `abort` (detail: why)."""

    at: float
    kind: str
    detail: str = ""


class VigilService:
    """One `vigil run -c config`, restarted whenever it ends until `stop()`."""

    def __init__(self, work: Path, config: Path, env: dict[str, str], *, restart_s: float,
                 watchdog_s: float, start_timeout_s: float) -> None:  # fmt: skip
        self.work, self.config, self.env = work, config, env
        self.restart_s, self.watchdog_s, self.start_timeout_s = (
            restart_s, watchdog_s, start_timeout_s,
        )  # fmt: skip
        self.log = work / "vigil.log"
        self.events: list[ServiceEvent] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.notify: ServiceNotify | None = None
        self._starts = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="systemd", daemon=True)

    # -- what the benchmark calls --------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Start supervising; returns once the first process said `READY=1`."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not any(e.kind == "ready" for e in self.events):
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"vigil did not become ready; see {self.log}")
            time.sleep(0.1)

    def kill(self, timeout: float = 60) -> tuple[float, float]:
        """SIGKILL the running Vigil; returns (killed at, started again at) once systemd's part
        (noticing, waiting `restart_s`, starting) is done."""
        with self._lock:
            process = self.process
            if process is None:
                raise RuntimeError("no vigil to kill")
            killed = time.time()
            self.events.append(ServiceEvent(killed, "kill"))
            process.kill()
        deadline = time.monotonic() + timeout
        while True:
            started = [e.at for e in self.events if e.kind == "exec" and e.at > killed]
            if started:
                return killed, started[0]
            if time.monotonic() > deadline:
                raise RuntimeError("vigil was not started again after the kill")
            time.sleep(0.02)

    def ready(self) -> bool:
        notify = self.notify
        return notify is not None and notify.ready_at is not None

    def stop(self, timeout: float = 60) -> int | None:
        """Stop supervising and stop Vigil cleanly (SIGINT, as Ctrl-C; SIGKILL after `timeout`);
        returns its exit code."""
        self._halt.set()
        with self._lock:
            process = self.process
            self.events.append(ServiceEvent(time.time(), "stop"))
        code = None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return code

    @property
    def pid(self) -> int | None:
        process = self.process
        return None if process is None else process.pid

    # -- systemd's part ------------------------------------------------------------------------

    def _spawn(self) -> None:
        self._starts += 1
        notify_path = self.work / f"notify-{self._starts}.sock"
        notify = ServiceNotify(notify_path)
        env = dict(self.env)
        env["NOTIFY_SOCKET"] = str(notify_path)
        env["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1e6))
        with open(self.log, "ab") as log:
            log.write(f"=== chaos: start #{self._starts} at {time.time():.3f} ===\n".encode())
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "vigil", "run", "-c", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True,
            )  # fmt: skip
        with self._lock:
            self.process, self.notify = process, notify
        self.events.append(ServiceEvent(time.time(), "exec", str(process.pid)))

    def _supervise(self) -> None:
        while not self._halt.is_set():
            self._spawn()
            process, notify = self.process, self.notify
            assert process is not None and notify is not None
            started, aborted, ready = time.time(), False, False
            while process.poll() is None:
                now = time.time()
                if not ready and notify.ready_at is not None:
                    self.events.append(ServiceEvent(notify.ready_at, "ready"))
                    ready = True
                if not aborted and not self._halt.is_set():
                    why = self._overdue(notify, started, now)
                    if why:
                        self.events.append(ServiceEvent(now, "abort", why))
                        process.send_signal(signal.SIGABRT)
                        aborted = True
                time.sleep(0.05)
            code = process.returncode
            self.events.append(ServiceEvent(
                time.time(), "exit",
                f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}",
            ))  # fmt: skip
            notify.close()
            with self._lock:
                self.process = None
            if code == 2:  # RestartPreventExitStatus=2: the configuration is invalid
                self.events.append(ServiceEvent(time.time(), "abort", "exit code 2: not restarted"))
                return
            if self._halt.wait(self.restart_s):
                return

    def _overdue(self, notify: ServiceNotify, started: float, now: float) -> str:
        if notify.ready_at is None:
            if now - started > self.start_timeout_s:
                return f"no READY=1 within {self.start_timeout_s:g} s (start timeout)"
            return ""
        last = notify.last_watchdog or notify.ready_at
        if now - last > self.watchdog_s:
            return f"no WATCHDOG=1 for {now - last:.0f} s (watchdog)"
        return ""

    def unplanned(self) -> list[ServiceEvent]:
        """Aborts (start timeout, watchdog), and exits that neither our SIGKILL nor our stop
        caused: each is a misbehaviour of Vigil."""
        found, expected = [], False
        for event in self.events:
            if event.kind == "abort":
                found.append(event)
            elif event.kind in ("kill", "stop"):
                expected = True
            elif event.kind == "exit":
                if not expected:
                    found.append(event)
                expected = False
        return found
