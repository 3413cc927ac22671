"""The shipped unit file: systemd's own tools accept it, and it keeps the settings Vigil relies on.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and this machine
has no /opt/vigil: the check runs on a copy whose ExecStart names this venv's `vigil` script
(same arguments). verify exits 0 even for unknown keys or unparsable values (it only warns),
so any diagnostic naming the unit fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "vigil.service"
SYSUSERS = ROOT / "packaging" / "systemd" / "vigil.sysusers"
INSTALLED_VIGIL = "/opt/vigil/.venv/bin/vigil"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze missing (apt-get install systemd)"
)


def _settings() -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order (keys may repeat)."""
    section = ""
    settings = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def _value(section: str, key: str) -> str:
    values = [v for s, k, v in _settings() if (s, k) == (section, key)]
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def _local_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as `vigil.service` in tmp_path, its ExecStart pointing at this venv's vigil."""
    vigil = Path(sys.executable).parent / "vigil"
    assert vigil.is_file(), f"{vigil} missing: is Vigil installed in this venv?"
    original = UNIT.read_text() if text is None else text
    assert original.count(INSTALLED_VIGIL) == 1
    copy = tmp_path / "vigil.service"
    copy.write_text(original.replace(INSTALLED_VIGIL, str(vigil)))
    return copy


def _verify(unit: Path) -> tuple[int, list[str]]:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    output = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in output if unit.name in line]


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    code, diagnostics = _verify(_local_copy(tmp_path))
    assert code == 0
    assert diagnostics == []


@needs_systemd_analyze
def test_verify_as_used_here_does_catch_a_mistake(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("LockPersonality=yes", "LockPersonalty=yes")
    _code, diagnostics = _verify(_local_copy(tmp_path, broken))
    assert any("LockPersonalty" in line for line in diagnostics)


@needs_systemd_analyze
def test_exposure_stays_low(tmp_path: Path) -> None:
    """`systemd-analyze security` scores 2.0 today ("OK"); dropping hardening raises it."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=25",
         str(_local_copy(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "ExecStart", f"{INSTALLED_VIGIL} run --config /etc/vigil/vigil.yml"),
        ("Service", "User", "vigil"),
        ("Service", "Group", "vigil"),
        ("Service", "StateDirectory", "vigil"),
        ("Service", "Restart", "always"),
        ("Service", "WatchdogSec", "30"),
        ("Service", "TimeoutStopSec", "15"),
        ("Service", "KillSignal", "SIGTERM"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "ReadWritePaths", "/var/lib/vigil"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "ProtectKernelTunables", "yes"),
        ("Service", "ProtectKernelModules", "yes"),
        ("Service", "ProtectControlGroups", "yes"),
        ("Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        ("Service", "LockPersonality", "yes"),
        ("Service", "RestrictRealtime", "yes"),
        ("Service", "SystemCallArchitectures", "native"),
        ("Service", "CapabilityBoundingSet", ""),
        ("Service", "AmbientCapabilities", ""),
        ("Install", "WantedBy", "multi-user.target"),
    ],
)
def test_the_unit_sets(section: str, key: str, expected: str) -> None:
    assert _value(section, key) == expected


def test_memory_deny_write_execute_stays_off() -> None:
    """ORC aborts Vigil when it cannot map code executable (see docs/DEPLOYMENT.md)."""
    assert not [v for _s, k, v in _settings() if k == "MemoryDenyWriteExecute" and v != "no"]


def test_the_stop_timeout_leaves_room_for_finishing_segments() -> None:
    # Vigil finishes open segments within 10 s of SIGTERM; systemd kills at TimeoutStopSec.
    assert int(_value("Service", "TimeoutStopSec")) >= 10 + 5


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_creates_the_vigil_user(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group"):
        (etc / name).write_text(Path("/etc", name).read_text())
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "--dry-run", str(SYSUSERS)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    if "vigil:" not in (etc / "passwd").read_text():
        assert "Creating user 'vigil'" in output


def test_the_example_config_is_valid_and_keeps_data_where_the_unit_allows() -> None:
    from vigil.config import load_config, resolve

    path = ROOT / "packaging" / "systemd" / "vigil.yml"
    resolved = resolve(load_config(path, env={}), base_dir=Path("/etc/vigil"))
    writable = Path(_value("Service", "ReadWritePaths"))
    for where in (resolved.data_dir, resolved.recording_root, resolved.database_path):
        assert where.is_relative_to(writable), where
