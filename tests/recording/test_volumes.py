"""The volume pool on real directories and real tmpfs mounts: identity, states, placement by
policy and thresholds, eject and attach. No GStreamer: placement is a path and an id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.mounts import fill, mounts, requires_mount
from vigil.config.resolve import VolumePlan
from vigil.config.storage import PlacementPolicy
from vigil.recording.identity import IDENTITY_FILE, create_identity, read_identity
from vigil.recording.volumes import NoSpace, VolumeError, VolumePool, VolumeState

MIB = 1024 * 1024
START = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def _plan(path: Path, priority: int = 1, *, min_free_mib: int = 1, **kw: object) -> VolumePlan:
    return VolumePlan(path=path, priority=priority, min_free_bytes=min_free_mib * MIB,
                      max_usage_percent=100.0, **kw)  # type: ignore[arg-type]  # fmt: skip


def _states(pool: VolumePool) -> dict[Path, tuple[VolumeState, str]]:
    return {v.path: (v.state, v.reason) for v in pool.views()}


def test_a_new_directory_gets_an_identity_and_keeps_it(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pool = VolumePool((_plan(disk),))
    changes = pool.scan()
    identity = read_identity(disk)
    assert identity is not None
    assert [(c.volume, c.new) for c in changes] == [(identity.id, VolumeState.ONLINE)]
    assert VolumePool((_plan(disk),)).scan()[0].volume == identity.id  # the same disk again


def test_a_missing_path_is_offline_and_never_created(tmp_path: Path) -> None:
    pool = VolumePool((_plan(tmp_path / "not-mounted"),))
    pool.scan()
    state, reason = _states(pool)[tmp_path / "not-mounted"]
    assert state is VolumeState.OFFLINE and "does not exist" in reason
    assert not (tmp_path / "not-mounted").exists()
    with pytest.raises(NoSpace, match="no usable volume") as refused:
        pool.place("cam", START)
    assert refused.value.exhausted  # nothing to wait for: the open file is finished


def test_require_mount_refuses_a_bare_directory_on_the_root_file_system(tmp_path: Path) -> None:
    bare = tmp_path / "mountpoint"
    bare.mkdir()
    pool = VolumePool((_plan(bare, require_mount=True),))
    pool.scan()
    state, reason = _states(pool)[bare]
    if state is VolumeState.OFFLINE:  # tmp_path on the root file system (the usual case)
        assert "root file system" in reason
        assert not (bare / IDENTITY_FILE).exists()
    else:
        pytest.skip("tmp_path is on a file system of its own here")


def test_a_known_volume_whose_identity_disappeared_is_offline_not_replaced(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    volume_id = create_identity(disk).id
    (disk / IDENTITY_FILE).unlink()  # as if the disk was unmounted and the mount point is bare
    pool = VolumePool((_plan(disk),), known_paths={volume_id: str(disk)})
    pool.scan()
    state, reason = _states(pool)[disk]
    assert state is VolumeState.OFFLINE and volume_id in reason
    assert read_identity(disk) is None


def test_a_corrupt_identity_file_fails_the_volume_with_the_reason(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / IDENTITY_FILE).write_text("not json")
    pool = VolumePool((_plan(disk),))
    pool.scan()
    state, reason = _states(pool)[disk]
    assert state is VolumeState.FAILED and "not a Vigil volume identity" in reason


def test_fill_takes_volumes_by_priority_and_spread_the_least_used(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    fill_pool = VolumePool((_plan(b, 2), _plan(a, 1)), policy=PlacementPolicy.FILL)
    fill_pool.scan()
    path, volume = fill_pool.place("cam", START)
    assert path.is_relative_to(a) and path.name == "00.00.mp4" and path.exists()
    assert volume == read_identity(a).id  # type: ignore[union-attr]
    # Same file system here: spread cannot tell them apart by use, so priority breaks the tie.
    spread_pool = VolumePool((_plan(b, 1), _plan(a, 2)), policy=PlacementPolicy.SPREAD)
    spread_pool.scan()
    assert spread_pool.place("cam", START)[0].is_relative_to(b)


@requires_mount
def test_thresholds_make_a_volume_full_and_placement_moves_on(tmp_path: Path) -> None:
    with mounts() as made:
        small = made.tmpfs(tmp_path / "small", 16)
        big = made.tmpfs(tmp_path / "big", 16)
        pool = VolumePool((_plan(small, 1, min_free_mib=4), _plan(big, 2, min_free_mib=4)))
        pool.scan()
        assert pool.place("cam", START)[0].is_relative_to(small)
        fill(small, leave_bytes=3 * MIB)
        assert pool.place("cam", START)[0].is_relative_to(big)  # no scan needed in between
        state, reason = _states(pool)[small]
        assert state is VolumeState.FULL and "below min_free_bytes 4.0 MiB" in reason
        fill(big, leave_bytes=2 * MIB)
        asked: list[bool] = []
        pool._on_no_room = lambda: asked.append(True)
        with pytest.raises(NoSpace) as refused:
            pool.place("cam", START)
        assert not refused.value.exhausted and asked == [True]
        pool.exhausted = True
        with pytest.raises(NoSpace, match="nothing can be deleted"):
            pool.place("cam", START)
        (small / "ballast.bin").unlink()
        assert pool.place("cam", START)[0].is_relative_to(small)  # room again: back in use
        assert _states(pool)[small][0] is VolumeState.ONLINE


@requires_mount
def test_a_disk_full_write_error_keeps_the_volume_full_until_real_room(tmp_path: Path) -> None:
    with mounts() as made:
        disk = made.tmpfs(tmp_path / "disk", 16)
        pool = VolumePool((_plan(disk, min_free_mib=0),))
        pool.scan()
        location, volume = pool.place("cam", START)
        fill(disk, leave_bytes=0)
        assert pool.write_failed(str(location), no_space=True, message="No space left") == volume
        assert pool.write_failed(str(location), no_space=True, message="again") == volume
        assert pool.view(volume).write_errors == 1  # one failed file, however many complaints
        pool.scan()
        assert _states(pool)[disk][0] is VolumeState.FULL  # thresholds of 0 would say online
        (disk / "ballast.bin").unlink()
        pool.scan()
        assert _states(pool)[disk][0] is VolumeState.ONLINE


def test_eject_then_attach_at_another_path(tmp_path: Path) -> None:
    slot, elsewhere = tmp_path / "slot", tmp_path / "elsewhere"
    slot.mkdir()
    pool = VolumePool((_plan(slot),))
    pool.scan()
    volume_id = read_identity(slot).id  # type: ignore[union-attr]
    pool.start_eject(volume_id[:8])  # a unique prefix is enough
    assert _states(pool)[slot][0] is VolumeState.EJECTING
    with pytest.raises(NoSpace):
        pool.place("cam", START)
    pool.finish_eject(volume_id)
    pool.scan()
    assert _states(pool)[slot] == (VolumeState.OFFLINE, "ejected: safe to unmount")
    with pytest.raises(VolumeError, match="already offline"):
        pool.start_eject(volume_id)

    slot.rename(elsewhere)  # the disk, mounted somewhere else
    slot.mkdir()  # and its old mount point, bare
    with pytest.raises(VolumeError, match="no Vigil volume"):
        pool.prepare_attach(volume_id, slot)
    with pytest.raises(VolumeError, match="no volume has id"):
        pool.prepare_attach("ffff", elsewhere)
    _volume, previous = pool.prepare_attach(volume_id, elsewhere)
    assert previous == slot
    view = pool.finish_attach(volume_id, elsewhere)
    assert (view.path, view.state) == (elsewhere, VolumeState.ONLINE)
    assert pool.place("cam", START)[0].is_relative_to(elsewhere)
    pool.scan()
    # The bare old mount point is not taken for a new volume: its disk is known elsewhere.
    assert read_identity(slot) is None
    assert _states(pool)[slot][0] is VolumeState.OFFLINE


def test_an_ejected_volume_still_mounted_stays_offline_until_it_was_seen_gone(
    tmp_path: Path,
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pool = VolumePool((_plan(disk),))
    pool.scan()
    volume_id = read_identity(disk).id  # type: ignore[union-attr]
    pool.start_eject(volume_id)
    pool.finish_eject(volume_id)
    pool.scan()
    assert _states(pool)[disk][0] is VolumeState.OFFLINE  # not plugged back by the next scan
    hidden = tmp_path / "away"
    disk.rename(hidden)
    pool.scan()  # gone
    hidden.rename(disk)
    pool.scan()  # back: attached by itself
    assert _states(pool)[disk][0] is VolumeState.ONLINE
