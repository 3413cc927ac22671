"""RTSP/TCP read-path benchmark: Vigil's path against rtspsrc, in one process, same cameras.

Modes, each `--sessions` pipelines ending in `rtph264depay ! h264parse ! fakesink`:
  native   Vigil's client for the handshake, `fdsrc ! vigilinterleave ! vigilrtpstamp`,
           with the socket low-water mark at `--batch-ms` of the measured bitrate (0: off);
  rtspsrc  `rtspsrc protocols=tcp buffer-mode=none` with vigilrtpstamp as rtpbin's jitterbuffer.
Reports this process's CPU (utime+stime, 100 % = one core) and context switches over `--seconds`
after `--warmup`. The cameras come from `vigil sim` in its own process (not counted).

Run: `.venv/bin/python -m benchmarks.rtsp_read --sessions 50 --mode native --batch-ms 40`.
"""

from __future__ import annotations

import argparse
import resource
import socket
import time

import gi

from benchmarks.common import Simulator
from vigil.media import gst
from vigil.media.rtsp import RtspSession, open_session

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

TAIL = "rtph264depay ! h264parse ! fakesink sync=false"


def _native(url: str, batch_bytes: int) -> tuple[Gst.Pipeline, RtspSession]:
    session = open_session(url)
    if batch_bytes > 1:
        session.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, batch_bytes)
    pipeline = Gst.parse_launch(
        f"fdsrc name=source fd={session.fileno()} blocksize=65536 do-timestamp=true "
        f"! vigilinterleave name=split ! vigilrtpstamp ! {TAIL}"
    )
    pipeline.get_by_name("split").set_property("caps", session.caps)
    return pipeline, session


def _rtspsrc(url: str) -> Gst.Pipeline:
    pipeline = Gst.parse_launch(
        f"rtspsrc name=source location={url} protocols=tcp buffer-mode=none ! {TAIL}"
    )
    pipeline.get_by_name("source").connect(
        "new-manager",
        lambda _src, rtpbin: rtpbin.connect(
            "request-jitterbuffer", lambda *_: Gst.ElementFactory.make("vigilrtpstamp", None)
        ),
    )
    return pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--mode", choices=("native", "rtspsrc"), default="native")
    parser.add_argument("--batch-ms", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    gst.init()
    # 2 Mbit/s = 250 bytes per ms.
    batch_bytes = int(250 * args.batch_ms)
    sim = Simulator(args.sessions)
    sim.start()
    port = sim.port
    try:
        pipelines: list[Gst.Pipeline] = []
        sessions: list[RtspSession] = []
        for index in range(1, args.sessions + 1):
            url = f"rtsp://127.0.0.1:{port}/cam{index}"
            if args.mode == "native":
                pipeline, session = _native(url, batch_bytes)
                sessions.append(session)
            else:
                pipeline = _rtspsrc(url)
            pipeline.set_state(Gst.State.PLAYING)
            pipelines.append(pipeline)
        time.sleep(args.warmup)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(args.seconds)
        after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / elapsed
        switches = after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw
        print(
            f"{args.mode} (batch {args.batch_ms:g} ms): {args.sessions} sessions, "
            f"CPU {100 * cpu:.1f} %, {switches / elapsed:.0f} context switches/s",
            flush=True,
        )
        for pipeline in pipelines:
            pipeline.get_by_name("source").set_state(Gst.State.NULL)  # source first
            pipeline.set_state(Gst.State.NULL)
        for session in sessions:
            session.close()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
