"""resolve(): absolute paths and the defaults that flow from global sections into streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import (
    FileSource,
    RecordingConfig,
    RtspSource,
    StreamConfig,
    TestSource,
    Transport,
    VigilConfig,
    load_config_text,
    plan_stream,
    resolve,
)
from vigil.config.loader import config_base_dir

BASE = Path("/etc/vigil")


@pytest.mark.parametrize(
    ("text", "data_dir", "recording_root", "database_path"),
    [
        ("", "/etc/vigil/data", "/etc/vigil/data/recordings", "/etc/vigil/data/vigil.db"),
        (
            "data_dir: /srv/vigil\n",
            "/srv/vigil",
            "/srv/vigil/recordings",
            "/srv/vigil/vigil.db",
        ),
        (
            "data_dir: ../state\nrecording: {root: rec}\ndatabase: {path: /db/v.db}\n",
            "/etc/state",
            "/etc/vigil/rec",
            "/db/v.db",
        ),
        (
            "recording: {root: /mnt/disk1/./rec/}\ndatabase: {path: db/../v.db}\n",
            "/etc/vigil/data",
            "/mnt/disk1/rec",
            "/etc/vigil/v.db",
        ),
    ],
)
def test_paths(text: str, data_dir: str, recording_root: str, database_path: str) -> None:
    result = resolve(load_config_text(text, env={}), base_dir=BASE)
    assert result.base_dir == BASE
    assert result.data_dir == Path(data_dir)
    assert result.recording_root == Path(recording_root)
    assert result.database_path == Path(database_path)


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    result = resolve(load_config_text("data_dir: ~/vigil\n", env={}), base_dir=BASE)
    assert result.data_dir == Path("/home/op/vigil")


def test_relative_base_dir_is_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = resolve(VigilConfig(), base_dir=Path("conf"))
    assert result.base_dir == tmp_path / "conf"
    assert result.data_dir == tmp_path / "conf" / "data"


def test_config_base_dir() -> None:
    assert config_base_dir(Path("/etc/vigil/vigil.yaml")) == Path("/etc/vigil")
    assert config_base_dir(Path("vigil.yaml")) == Path.cwd()


STREAMS = """\
recording:
  root: /rec
  segment_seconds: 120
  fragment_seconds: 0.5
streams:
  - name: gate
    source: rtsp://admin:secret@192.0.2.10/stream1
    transport: tcp
  - name: yard
    source: file:clips/yard.mp4?loop=false
    segment_seconds: 10
    record: false
  - name: lab
    source: test://ball?fps=10
    enabled: false
"""


def test_stream_plans_take_global_defaults_and_overrides() -> None:
    result = resolve(load_config_text(STREAMS, env={}), base_dir=BASE)
    gate, yard, lab = result.streams
    assert [p.name for p in result.streams] == ["gate", "yard", "lab"]
    assert gate.source == RtspSource("rtsp://admin:secret@192.0.2.10/stream1", Transport.TCP)
    assert gate.redacted_source == "rtsp://admin:***@192.0.2.10/stream1"
    assert [p.segment_seconds for p in result.streams] == [120, 10, 120]
    assert {p.fragment_seconds for p in result.streams} == {0.5}
    assert {p.recording_root for p in result.streams} == {Path("/rec")}
    assert [p.record for p in result.streams] == [True, False, True]
    assert [p.enabled for p in result.streams] == [True, True, False]
    assert yard.source == FileSource(Path("/etc/vigil/clips/yard.mp4"), loop=False)
    assert lab.source == TestSource(pattern="ball", fps=10)
    assert "secret" not in repr(result)


def test_stream_lookup_ignores_case() -> None:
    result = resolve(load_config_text(STREAMS, env={}), base_dir=BASE)
    plan = result.stream("GATE")
    assert plan is not None and plan.name == "gate"
    assert result.stream("nope") is None


def test_absolute_file_source_is_kept() -> None:
    result = resolve(
        VigilConfig(streams=[StreamConfig(name="a", source="file:///srv/a.mp4")]), base_dir=BASE
    )
    assert result.streams[0].source == FileSource(Path("/srv/a.mp4"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("simulator: {enabled: false}\n", None),
        ("simulator: {}\n", "default"),
        ("simulator: {file: clips/loop.mp4}\n", "/etc/vigil/clips/loop.mp4"),
    ],
)
def test_simulator(text: str, expected: str | None) -> None:
    result = resolve(load_config_text(text, env={}), base_dir=BASE)
    if expected is None:
        assert result.simulator is None
    elif expected == "default":
        assert result.simulator is not None and result.simulator.file is None
    else:
        assert result.simulator is not None and result.simulator.file == Path(expected)


def test_config_as_written_is_kept() -> None:
    config = load_config_text("data_dir: rel\n", env={})
    result = resolve(config, base_dir=BASE)
    assert result.config is config
    assert result.config.data_dir == Path("rel")
    assert result.log is config.log and result.api is config.api


def test_plan_stream_for_a_stream_added_at_run_time() -> None:
    plan = plan_stream(
        StreamConfig(name="new", source="file:a.mp4", segment_seconds=5),
        recording=RecordingConfig(segment_seconds=30),
        recording_root=Path("/rec"),
        base_dir=BASE,
    )
    assert (plan.segment_seconds, plan.fragment_seconds) == (5, 1.0)
    assert plan.source == FileSource(Path("/etc/vigil/a.mp4"))
    assert plan.recording_root == Path("/rec")


def test_resolve_creates_nothing(tmp_path: Path) -> None:
    resolve(load_config_text(STREAMS, env={}), base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
