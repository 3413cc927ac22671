"""Run as a script: start many stream pipelines at once from many threads, as Vigil's media pool
does, with the interpreter switching threads as often as it can, and report what went wrong.

First many bare pipelines whose pad probes call methods of their `Gst.PadProbeInfo` (the
callback that failed in the field), all added at the same instant from their own threads; then
many of Vigil's own stream pipelines, started at once, which must each record a segment.

Prints one JSON line: the errors the probes met and how many streams recorded. PyGObject also
prints callback exceptions to stderr, which the caller reads. `--unprepared` skips
`introspection.prepare()`, to show the race it prevents.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import sys
import threading
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--streams", type=int, default=24)
    parser.add_argument("--probers", type=int, default=64)
    parser.add_argument("--unprepared", action="store_true")
    args = parser.parse_args()
    from vigil.media import introspection

    if args.unprepared:
        introspection.prepare = lambda: 0  # type: ignore[assignment]
    from vigil.config import parse_source
    from vigil.media import gst
    from vigil.media.ingest import IngestPipeline
    from vigil.media.mainloop import GLibLoopThread
    from vigil.media.messages import MediaMessage, SegmentFileOpened
    from vigil.media.recorder import RecordingSpec

    # Hand the GIL over as often as possible: a race that needs two threads inside the same
    # few bytecodes at once becomes likely instead of one start in five.
    sys.setswitchinterval(1e-6)
    gst.init()
    errors = _probe_race(args.probers)
    glib = GLibLoopThread()
    glib.start()
    spec = parse_source(f"file://{args.video}")
    numbers = itertools.count()
    recording = RecordingSpec(60, 0.5, lambda _start: str(args.out / f"{next(numbers)}.mp4"))
    barrier = threading.Barrier(args.streams)
    recorded: queue.Queue[int] = queue.Queue()
    pipelines: list[IngestPipeline] = []
    lock = threading.Lock()

    def start(number: int) -> None:
        def post(message: MediaMessage) -> None:
            if isinstance(message, SegmentFileOpened):
                recorded.put(number)

        barrier.wait()
        pipeline = IngestPipeline(f"cam{number}", spec, post)
        pipeline.attach_recording(recording)
        pipeline.start()
        with lock:
            pipelines.append(pipeline)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(args.streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen: set[int] = set()
    try:
        while len(seen) < args.streams:
            seen.add(recorded.get(timeout=20))
    except queue.Empty:
        pass
    for pipeline in pipelines:
        pipeline.stop(5.0)
    glib.stop()
    print(json.dumps({"errors": errors, "recorded": len(seen), "streams": args.streams}))


def _probe_race(count: int) -> list[str]:
    """`count` pipelines whose first probes are added at once; the errors their callbacks met."""
    from gi.repository import Gst

    errors: list[str] = []
    barrier = threading.Barrier(count)

    def on_probe(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        try:
            if info.type & Gst.PadProbeType.BUFFER:
                info.get_buffer()
            else:
                info.get_event()
        except TypeError as error:
            errors.append(str(error))
        return Gst.PadProbeReturn.OK

    def run() -> None:
        pipeline = Gst.parse_launch("videotestsrc num-buffers=3 ! fakesink name=sink")
        pad = pipeline.get_by_name("sink").get_static_pad("sink")
        barrier.wait()
        pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM, on_probe)
        pipeline.set_state(Gst.State.PLAYING)
        pipeline.get_bus().timed_pop_filtered(
            10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        pipeline.set_state(Gst.State.NULL)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors[:3]


if __name__ == "__main__":
    main()
