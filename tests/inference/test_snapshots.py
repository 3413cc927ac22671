"""Detection snapshots: drawing, the store's layout, atomic writes, refused keys, pruning; and
what detection keeps (holds on objects' recordings, snapshot retention)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

from tests.support.mounts import fill, mounts, requires_mount
from tests.support.service import until
from vigil.events import EventBus, ObjectLeft
from vigil.inference.keeper import EventKeeper, HoldWindow, hold_window, prune_snapshots
from vigil.inference.snapshots import SnapshotStore, render_snapshot
from vigil.inference.types import Box
from vigil.store.db import Database
from vigil.store.holds import HoldStore

AT = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.mark.parametrize("grey", [20, 235])  # a dark and a light scene
def test_render_draws_the_box_and_keeps_the_size(grey: int) -> None:
    image = np.full((240, 320, 3), grey, np.uint8)
    jpeg = render_snapshot(image, Box(0.25, 0.25, 0.75, 0.75), "person", 0.87)
    assert jpeg[:2] == b"\xff\xd8"
    drawn = _decode(jpeg)
    assert drawn.shape == (240, 320, 3)
    # The middle of the box's left edge, and a point well inside the box, untouched.
    edge = drawn[120, 80].astype(int)
    inside = drawn[120, 160].astype(int)
    assert np.abs(edge - grey).max() > 60
    assert np.abs(inside - grey).max() < 12
    assert (image == grey).all()  # the caller's frame is not drawn on


def test_render_puts_a_caption_even_for_a_box_at_the_top_edge() -> None:
    image = np.full((120, 160, 3), 128, np.uint8)
    drawn = _decode(render_snapshot(image, Box(0.0, 0.0, 1.0, 1.0), "car", 0.5, quality=95))
    assert drawn.shape == (120, 160, 3)
    # The caption band is dark: some pixel near the top-left is far darker than the scene.
    assert drawn[2:20, 2:60].min() < 60


def test_save_writes_under_stream_and_day_and_returns_the_key(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    key = store.save("gate", "17", "entered", b"\xff\xd8jpeg", AT + timedelta(hours=2))
    assert key == "gate/2026-11-25/17-entered.jpg"  # the day is UTC's
    path = store.path(key)
    assert path == (tmp_path / "gate/2026-11-25/17-entered.jpg").resolve()
    assert path is not None and path.read_bytes() == b"\xff\xd8jpeg"
    again = store.save("gate", "17", "entered", b"second", AT + timedelta(hours=2))
    assert again == key and path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["17-entered.jpg"]  # no temp left


def test_unsafe_object_ids_stay_inside_the_root(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps")
    key = store.save("gate", "../../etc/x", "best", b"x", AT)
    assert key is not None and ".." not in key.split("/")
    assert store.path(key) is not None
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    "key",
    [
        "../outside.jpg",
        "gate/../../outside.jpg",
        "gate/2026-11-24/../../../outside.jpg",
        "/etc/passwd",
        "gate//2026-11-24/1-best.jpg",
        "./gate/2026-11-24/1-best.jpg",
        "gate\\..\\..\\outside.jpg",
        "",
        "gate/2026-11-24/nothing.jpg",
    ],
)
def test_keys_that_escape_the_root_or_name_nothing_are_refused(tmp_path: Path, key: str) -> None:
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    store = SnapshotStore(tmp_path / "snaps")
    assert store.save("gate", "1", "best", b"x", datetime(2026, 11, 24, tzinfo=UTC))
    assert store.path(key) is None


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    root = tmp_path / "snaps"
    (root / "gate" / "2026-11-24").mkdir(parents=True)
    os.symlink(tmp_path / "outside.jpg", root / "gate/2026-11-24/1-best.jpg")
    assert SnapshotStore(root).path("gate/2026-11-24/1-best.jpg") is None


def test_a_failing_disk_gives_none_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")  # the root is a file: every directory under it fails
    store = SnapshotStore(blocker)
    with caplog.at_level("WARNING", logger="vigil.inference.snapshots"):
        assert store.save("gate", "1", "best", b"x", AT) is None
        assert store.save("gate", "2", "best", b"x", AT) is None
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


@requires_mount
def test_a_full_disk_gives_none_and_saving_resumes_when_there_is_room(tmp_path: Path) -> None:
    with mounts() as made:
        root = made.tmpfs(tmp_path / "disk", size_mib=1)
        store = SnapshotStore(root)
        assert store.save("gate", "0", "best", b"x", AT) is not None  # the day directory exists
        ballast = fill(root, leave_bytes=0)
        assert store.save("gate", "1", "best", b"x" * 200_000, AT) is None
        assert not list(root.rglob(".tmp-*"))  # the half-written temp file is gone
        ballast.unlink()
        assert store.save("gate", "1", "best", b"x" * 200_000, AT) == "gate/2026-11-24/1-best.jpg"


def test_saves_from_many_threads(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    keys: list[str | None] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(20):
            key = store.save(f"s{n % 3}", str(i % 5), "best", bytes([n, i]) * 100, AT)
            with lock:
                keys.append(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert None not in keys
    files = list(tmp_path.rglob("*.jpg"))
    assert len(files) == 15 and all(f.stat().st_size == 200 for f in files)
    assert not [f for f in tmp_path.rglob(".tmp-*")]


def test_prune_removes_whole_days_before_the_cutoff(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for offset in range(4):  # 20, 21, 22, 23 November
        for stream in ("gate", "yard"):
            store.save(stream, "1", "entered", b"x", day + timedelta(days=offset))
            store.save(stream, "1", "best", b"x", day + timedelta(days=offset))
    (tmp_path / "gate" / "not-a-day").mkdir()
    # The 22nd has not wholly passed the cutoff: it stays.
    removed = store.prune(datetime(2026, 11, 22, 6, tzinfo=UTC))
    assert removed == 8
    assert sorted(p.name for p in (tmp_path / "gate").iterdir()) == [
        "2026-11-22", "2026-11-23", "not-a-day",
    ]  # fmt: skip
    assert store.path("gate/2026-11-20/1-best.jpg") is None
    assert store.path("yard/2026-11-22/1-best.jpg") is not None
    assert store.prune(datetime(2026, 11, 22, 6, tzinfo=UTC)) == 0


def test_prune_of_a_missing_root_is_nothing(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path / "none").prune(AT) == 0


# -- keeping: holds on the recording of objects that left, snapshot retention ------------------
# (vigil.inference.keeper; here because the keeper's other half is pruning this store)


T = TypeVar("T")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _left(stream: str = "gate", first: float = 0, last: float = 10, object_id: str = "7"
          ) -> ObjectLeft:  # fmt: skip
    return ObjectLeft(stream=stream, object_id=object_id, label="person", score=0.9,
                      box=(0.1, 0.1, 0.2, 0.2), first_seen=NOW + timedelta(seconds=first),
                      last_seen=NOW + timedelta(seconds=last),
                      at=NOW + timedelta(seconds=last + 3))  # fmt: skip


@pytest.mark.parametrize(
    ("padding", "first", "last", "keep_days", "expected"),
    [
        ((5, 5), 0, 10, 7, (-5, 15, 7)),
        ((0, 0), 3, 3, 1, (3, 4, 1)),  # seen once, no padding: still a second of video
        ((2, 30), 0, 1, 0.5, (-2, 31, 0.5)),
        ((5, 5), 0, 10, 0, None),  # holds off
    ],
)
def test_hold_window(
    padding: tuple[float, float], first: float, last: float, keep_days: float,
    expected: tuple[float, float, float] | None,
) -> None:  # fmt: skip
    window = hold_window(_left(first=first, last=last), padding, keep_days, NOW)
    if expected is None:
        assert window is None
        return
    start, end, days = expected
    assert window == HoldWindow(
        stream="gate", start=NOW + timedelta(seconds=start), end=NOW + timedelta(seconds=end),
        until=NOW + timedelta(days=days), reason="object person 7",
    )  # fmt: skip


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def test_objects_that_left_get_a_hold_on_their_recording(db: Database) -> None:
    holds = HoldStore(db)
    bus = EventBus()
    keeper = EventKeeper(bus, holds, _in_thread, keep_days=lambda s: 0 if s == "yard" else 30,
                         padding_s=(5, 5), clock=lambda: NOW)  # fmt: skip
    keeper.start()
    keeper.start()  # idempotent
    try:
        bus.publish(_left("yard"))  # holds are off for yard
        bus.publish(_left())
        await until(lambda: len(holds.list()) == 1, 10)
        (hold,) = holds.list()
        assert (hold.stream, hold.reason) == ("gate", "object person 7")
        assert (hold.start, hold.end) == (NOW - timedelta(seconds=5), NOW + timedelta(seconds=15))
        assert hold.until == NOW + timedelta(days=30)
        # A second object inside the first one's window is kept by the same hold; one that
        # stayed longer gets its own.
        bus.publish(_left(first=1, last=9, object_id="8"))
        bus.publish(_left(first=5, last=40, object_id="9"))
        await until(lambda: len(holds.list()) == 2, 10)
        assert [h.reason for h in holds.list()] == ["object person 7", "object person 9"]
    finally:
        await keeper.stop()
        await keeper.stop()


async def test_stopping_holds_what_already_arrived(db: Database) -> None:
    holds = HoldStore(db)
    bus = EventBus()
    keeper = EventKeeper(bus, holds, _in_thread, keep_days=1)
    keeper.start()
    for n in range(5):
        bus.publish(_left(first=100 * n, last=100 * n + 5, object_id=str(n)))
    await keeper.stop()
    assert len(holds.list()) == 5


async def test_a_failed_write_does_not_stop_the_holds_after_it(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    holds = HoldStore(db)
    bus = EventBus()
    calls = 0

    async def flaky(fn: Callable[[], T]) -> T:
        nonlocal calls
        if getattr(fn, "func", None) == holds.add:  # (not the expired holds' deletion)
            calls += 1
            if calls == 1:
                raise OSError("database is locked")
        return await asyncio.to_thread(fn)

    keeper = EventKeeper(bus, holds, flaky, keep_days=1)
    keeper.start()
    try:
        bus.publish(_left(object_id="1"))
        bus.publish(_left(first=50, last=60, object_id="2"))
        await until(lambda: len(holds.list()) == 1, 10)
    finally:
        await keeper.stop()
    assert holds.list()[0].reason == "object person 2"
    assert "could not keep the recording of object person 1" in caplog.text


async def test_the_keeper_prunes_old_snapshots(db: Database, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    for days_ago in range(5):
        store.save("gate", "1", "best", b"x", NOW - timedelta(days=days_ago))
    assert prune_snapshots(store, 0, now=NOW) == 0  # 0: kept for ever
    keeper = EventKeeper(EventBus(), HoldStore(db), _in_thread, keep_days=0, snapshots=store,
                         snapshot_retention_days=2, clock=lambda: NOW)  # fmt: skip
    keeper.start()
    try:
        # Kept: today, yesterday, and the day before (not wholly older than 2 days).
        await until(lambda: len(list(store.root.rglob("*.jpg"))) == 3, 10)
    finally:
        await keeper.stop()
    assert await keeper.prune_snapshots() == 0
