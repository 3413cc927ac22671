"""Reload plans: what restarts a stream, what is applied live, what needs Vigil restarted."""

from __future__ import annotations

from pathlib import Path

from vigil.config import load_config_text, resolve
from vigil.config.diff import plan_changes
from vigil.config.resolve import ResolvedConfig

BASE = """
data_dir: {data}
{extra}
streams:
  - {{name: cam, source: "test://ball"}}
  - {{name: door, source: "test://ball"{door}}}
"""


def _resolved(tmp_path: Path, extra: str = "", door: str = "") -> ResolvedConfig:
    text = BASE.format(data=tmp_path / "data", extra=extra, door=door)
    return resolve(load_config_text(text, env={}), base_dir=tmp_path)


def test_retention_changes_restart_nothing(tmp_path: Path) -> None:
    old = _resolved(tmp_path)
    new = _resolved(tmp_path, extra="recording: {retain_days: 7}", door=", retain_days: 1")
    plan = plan_changes(old, new)
    assert (plan.changed, plan.needs_restart) == ((), ())
    assert [p.retain_days for p in new.streams] == [7, 1]


def test_a_segment_length_change_restarts_exactly_its_stream(tmp_path: Path) -> None:
    plan = plan_changes(_resolved(tmp_path), _resolved(tmp_path, door=", segment_seconds: 30"))
    assert [p.name for p in plan.changed] == ["door"] and plan.unchanged == ("cam",)


def test_volume_changes_need_a_restart(tmp_path: Path) -> None:
    old = _resolved(tmp_path)
    moved = _resolved(tmp_path, extra=f"recording: {{root: {tmp_path / 'elsewhere'}}}")
    assert plan_changes(old, moved).needs_restart == ("storage",)
    assert plan_changes(old, moved).changed == ()
    volumes = _resolved(tmp_path, extra=f"storage: {{volumes: [{{path: {tmp_path / 'd1'}}}]}}")
    assert plan_changes(old, volumes).needs_restart == ("storage",)


def test_a_changed_secret_needs_a_restart_though_both_print_as_stars(tmp_path: Path) -> None:
    user = "rtsp: {{users: [{{name: alice, password: {}}}]}}"
    old = _resolved(tmp_path, extra=user.format("one"))
    assert plan_changes(old, _resolved(tmp_path, extra=user.format("one"))).needs_restart == ()
    assert plan_changes(old, _resolved(tmp_path, extra=user.format("two"))).needs_restart == (
        "rtsp",
    )
    turn = "webrtc: {{turn_servers: [{{url: 'turn:192.0.2.1', username: u, credential: {}}}]}}"
    old = _resolved(tmp_path, extra=turn.format("a"))
    assert plan_changes(old, _resolved(tmp_path, extra=turn.format("b"))).needs_restart == (
        "webrtc",
    )
