"""Carry one pipeline's video into other pipelines, without Python touching a buffer.

A stream's video is produced in one pipeline (the ingest pipeline, or a publisher's pipeline:
RTSP RECORD, WHIP) and consumed in others (the RTSP server's shared media, the WebRTC fan-out, the
ingest pipeline of a published stream). Those pipelines come and go independently: a viewer's
media is built when the first viewer connects, an ingest pipeline is rebuilt when its stream's
configuration changes, a publisher reconnects.

`Outlet` is the producer's side: a tee in the producing pipeline. Each consumer gets its own
branch off it, ``queue (leaky) ! proxysink``, paired 1:1 with the consumer's ``proxysrc``
(gst-plugins-bad's proxy elements pass buffers, events and queries between pipelines in C).
A branch per consumer, made when the consumer connects, because a proxysink forwards only what
arrives after it is paired: the tee replays the sticky events (stream-start, caps, segment) to a
newly linked pad, so each consumer starts with caps and a segment. The queue is leaky so a
stalled consumer loses its own frames, never the producer's (recording never waits on a viewer).
EOS does not cross: a producer that stops is replaced, and the consumer stays up for the next.

`Relay` is the stream's meeting point, which outlives both sides: consumers register their
proxysrc once and are reconnected to whichever outlet is current (none while the stream is down;
the consumer then simply receives nothing until the next outlet appears).

Timestamps cross as running time of the producer; `Outlet.connect` moves them onto the consumer's
running time with a pad offset (both pipelines run on the system clock), so a recorder downstream
of a published stream sees times it can map to the wall clock.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gi.repository import Gst

from vigil.media import gst


def unlink_when_idle(tee: Gst.Element, tee_pad: Gst.Pad, sink: Gst.Pad) -> None:
    """Unlink a tee's src pad from `sink` once no buffer is in flight on it. IDLE runs at once
    when nothing flows, else right after the buffer in flight: a short wait (bounded at 2 s)."""
    done = threading.Event()

    def unlink(pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        pad.unlink(sink)
        done.set()
        return Gst.PadProbeReturn.REMOVE

    if tee_pad.get_peer() is None:
        return
    tee_pad.add_probe(Gst.PadProbeType.IDLE, unlink)
    if not done.wait(2.0):
        logger.warning("a branch of %s did not go idle", tee.get_name())


logger = logging.getLogger(__name__)

# Frames a consumer may fall behind before its branch drops the oldest (about 2 s of video):
# enough to ride out a scheduling hiccup, small enough that a stuck consumer holds little memory.
BRANCH_MAX_BUFFERS = 60

_names = itertools.count(1)


@dataclass(eq=False)
class _Branch:
    """One consumer's branch off an outlet's tee."""

    queue: Gst.Element
    sink: Gst.Element
    tee_pad: Gst.Pad | None
    probe: int
    watching: bool = True  # a viewer (wants low latency), not a background consumer


class Outlet:
    """The producing side: branches off `tee` in `pipeline`, one per consumer."""

    def __init__(self, pipeline: Gst.Pipeline, tee: Gst.Element) -> None:
        self.pipeline = pipeline
        self.tee = tee
        self._lock = threading.Lock()
        self._branches: dict[Gst.Element, _Branch] = {}  # by the consumer's proxysrc
        self._closed = False
        # Told the number of watching consumers (viewers) whenever it changes (any thread;
        # must not block). Background consumers (detection) are not counted.
        self.on_consumers: Callable[[int], None] | None = None

    def connect(self, proxysrc: Gst.Element, *, watching: bool = True) -> bool:
        """Feed `proxysrc` (in another pipeline) from this outlet; False if closed.
        `watching` False: a background consumer, left out of `on_consumers`' count."""
        with self._lock:
            if self._closed or proxysrc in self._branches:
                return not self._closed
            n = next(_names)
            queue = gst.make("queue", f"relay-queue{n}", leaky=2,
                             max_size_buffers=BRANCH_MAX_BUFFERS, max_size_bytes=0,
                             max_size_time=0)  # fmt: skip
            sink = gst.make("proxysink", f"relay-sink{n}")
            # Paired before anything flows, so the sticky events the tee replays arrive there.
            proxysrc.set_property("proxysink", sink)
            _move_onto(proxysrc, self.pipeline)
            self.pipeline.add(queue)
            self.pipeline.add(sink)
            queue.link(sink)
            probe = queue.get_static_pad("sink").add_probe(
                Gst.PadProbeType.EVENT_DOWNSTREAM, _drop_eos
            )
            sink.sync_state_with_parent()
            queue.sync_state_with_parent()
            tee_pad = self.tee.request_pad_simple("src_%u")
            linked = tee_pad is not None and tee_pad.link(queue.get_static_pad("sink"))
            if linked != Gst.PadLinkReturn.OK:
                logger.error("cannot link a relay branch to %s", self.tee.get_name())
                self._remove(_Branch(queue, sink, tee_pad, probe))
                return False
            self._branches[proxysrc] = _Branch(queue, sink, tee_pad, probe, watching)
            count = self._watching()
        if watching:
            self._tell(count)
        return True

    def _watching(self) -> int:
        return sum(1 for branch in self._branches.values() if branch.watching)

    def disconnect(self, proxysrc: Gst.Element) -> None:
        """Stop feeding `proxysrc` and take its branch out of the producing pipeline."""
        with self._lock:
            branch = self._branches.pop(proxysrc, None)
            count = self._watching()
        if branch is not None:
            self._remove(branch)
            if branch.watching:
                self._tell(count)

    def close(self) -> None:
        """The producer is going: drop every branch (their consumers receive nothing more)."""
        with self._lock:
            self._closed = True
            branches = list(self._branches.values())
            self._branches.clear()
        for branch in branches:
            self._remove(branch)
        if branches:
            self._tell(0)

    def _tell(self, count: int) -> None:
        if self.on_consumers is not None:
            self.on_consumers(count)

    @property
    def consumers(self) -> int:
        """How many watching consumers (viewers) this outlet feeds."""
        with self._lock:
            return self._watching()

    def _remove(self, branch: _Branch) -> None:
        """Unlink the branch when its tee pad is idle, then drop its elements."""
        tee_pad = branch.tee_pad
        if tee_pad is not None:
            unlink_when_idle(self.tee, tee_pad, branch.queue.get_static_pad("sink"))
        if tee_pad is not None:
            self.tee.release_request_pad(tee_pad)
        branch.queue.get_static_pad("sink").remove_probe(branch.probe)
        for element in (branch.queue, branch.sink):
            element.set_state(Gst.State.NULL)
            if element.get_parent() is self.pipeline:
                self.pipeline.remove(element)


def _drop_eos(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    event = info.get_event()
    if event is not None and event.type == Gst.EventType.EOS:
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def _move_onto(proxysrc: Gst.Element, producer: Gst.Pipeline) -> None:
    """Shift the consumer's running time onto the producer's (a pad offset, applied in C).

    Both pipelines use the system clock: a buffer at producer running time r was produced at
    absolute time base_p + r, which is running time base_p - base_c + r for the consumer. Before
    the consumer runs (no base time yet) it is left alone; the consumer's owner can align it
    instead by giving its pipeline the producer's base time (`align`)."""
    consumer = _pipeline_of(proxysrc)
    pad = proxysrc.get_static_pad("src")
    if consumer is None or pad is None:
        return
    base_p, base_c = producer.get_base_time(), consumer.get_base_time()
    if consumer.get_state(0)[1] == Gst.State.PLAYING and base_c and base_p:
        pad.set_offset(int(base_p) - int(base_c))
    else:
        pad.set_offset(0)


def _pipeline_of(element: Gst.Element) -> Gst.Pipeline | None:
    parent = element.get_parent()
    while parent is not None and not isinstance(parent, Gst.Pipeline):
        parent = parent.get_parent()
    return parent


def align(consumer: Gst.Pipeline, producer: Gst.Pipeline | None) -> None:
    """Run `consumer` on the producer's clock and base time, before it starts: its running time
    is then the producer's, with no offset to compute. Call before the consumer goes to PAUSED."""
    consumer.use_clock(Gst.SystemClock.obtain())
    if producer is not None and producer.get_base_time():
        consumer.set_start_time(Gst.CLOCK_TIME_NONE)
        consumer.set_base_time(producer.get_base_time())


@dataclass(eq=False)
class Relay:
    """A stream's meeting point between its current outlet and its consumers."""

    name: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _outlet: Outlet | None = None
    _consumers: list[Gst.Element] = field(default_factory=list)
    _background: set[Gst.Element] = field(default_factory=set)
    _watchers: list[Callable[[bool], None]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """True while an outlet (a running producer) is bound."""
        return self._outlet is not None

    @property
    def producer(self) -> Gst.Pipeline | None:
        """The producing pipeline, while there is one."""
        outlet = self._outlet
        return outlet.pipeline if outlet is not None else None

    @property
    def caps(self) -> Gst.Caps | None:
        """What the current producer sends (None while there is none or before its first
        caps): lets a consumer refuse a codec it cannot take before building anything."""
        outlet = self._outlet
        if outlet is None:
            return None
        pad = outlet.tee.get_static_pad("sink")
        return pad.get_current_caps() if pad is not None else None

    def bind(self, outlet: Outlet) -> None:
        """A producer started: feed every registered consumer from it."""
        with self._lock:
            old, self._outlet = self._outlet, outlet
            consumers = list(self._consumers)
            background = set(self._background)
            watchers = list(self._watchers)
        if old is not None and old is not outlet:
            old.close()
        for proxysrc in consumers:
            outlet.connect(proxysrc, watching=proxysrc not in background)
        for watcher in watchers:
            watcher(True)

    def unbind(self, outlet: Outlet) -> None:
        """That producer is going (if it is still the current one)."""
        with self._lock:
            if self._outlet is not outlet:
                return
            self._outlet = None
            watchers = list(self._watchers)
        outlet.close()
        for watcher in watchers:
            watcher(False)

    def add(self, proxysrc: Gst.Element, *, watching: bool = True) -> bool:
        """Register a consumer; it is fed now if a producer runs. True when it is fed now.
        `watching` False marks a background consumer (detection): it does not make the
        producer read for low latency the way a viewer does."""
        with self._lock:
            if proxysrc not in self._consumers:
                self._consumers.append(proxysrc)
            if not watching:
                self._background.add(proxysrc)
            outlet = self._outlet
        return outlet.connect(proxysrc, watching=watching) if outlet is not None else False

    def remove(self, proxysrc: Gst.Element) -> None:
        """Unregister a consumer and take its branch away."""
        with self._lock:
            if proxysrc in self._consumers:
                self._consumers.remove(proxysrc)
            self._background.discard(proxysrc)
            outlet = self._outlet
        if outlet is not None:
            outlet.disconnect(proxysrc)

    @property
    def consumers(self) -> int:
        """How many consumers are registered."""
        with self._lock:
            return len(self._consumers)

    def watch(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call `callback(live)` whenever a producer binds or goes; returns the unsubscriber.
        Called on whatever thread binds (a media or GLib thread): hand over, do not block."""
        with self._lock:
            self._watchers.append(callback)

        def unwatch() -> None:
            with self._lock:
                if callback in self._watchers:
                    self._watchers.remove(callback)

        return unwatch


class RelayHub:
    """Every stream's relays: `video` carries what a stream produces (to viewers), `publish`
    what a publisher sends into a stream whose source is `publish` (to its ingest pipeline)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._video: dict[str, Relay] = {}
        self._publish: dict[str, Relay] = {}

    def video(self, stream: str) -> Relay:
        """The relay of `stream`'s video (created on first use)."""
        with self._lock:
            return self._video.setdefault(stream, Relay(stream))

    def publish(self, stream: str) -> Relay:
        """The relay from `stream`'s publisher to its ingest pipeline (created on first use)."""
        with self._lock:
            return self._publish.setdefault(stream, Relay(stream))
