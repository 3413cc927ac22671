"""`vigil run` under a fake systemd: READY, STATUS, WATCHDOG, and STOPPING at SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.notify_listener import NotifyListener
from tests.support.media import environment_without_vigil

pytestmark = pytest.mark.e2e


def _wired() -> bool:
    """True once app.py/cli.py drive vigil.ops.systemd (the lead sets this marker)."""
    import vigil.app

    return getattr(vigil.app, "SYSTEMD_NOTIFY", False) is True


CONFIG = """\
data_dir: {data}
streams:
  - name: t
    source: "test://ball?size=160x120&fps=10"
"""


@pytest.mark.skipif(not _wired(), reason="vigil.app.SYSTEMD_NOTIFY not set: notify not wired yet")
def test_vigil_run_speaks_sd_notify(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    config.write_text(CONFIG.format(data=tmp_path / "data"))
    log = tmp_path / "vigil.log"
    env = {
        k: v
        for k, v in environment_without_vigil().items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    with NotifyListener(str(tmp_path / "notify.sock")) as systemd:
        env |= {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "2000000"}
        with log.open("wb") as out:
            vigil = subprocess.Popen(
                [sys.executable, "-m", "vigil", "run", "--config", str(config)],
                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            systemd.wait_for(lambda: bool(systemd.having("READY", "1")), 60, "READY=1")
            systemd.wait_for(
                lambda: any("1/1" in s for s in systemd.statuses()), 60, "a STATUS with 1/1"
            )
            systemd.wait_for(lambda: len(systemd.having("WATCHDOG", "1")) >= 2, 30, "WATCHDOG=1")
        finally:
            vigil.send_signal(signal.SIGTERM)
            try:
                code = vigil.wait(30)
            except subprocess.TimeoutExpired:
                vigil.kill()
                code = vigil.wait()
        assert code == 0, log.read_text()
        systemd.wait_for(lambda: bool(systemd.having("STOPPING", "1")), 5, "STOPPING=1")
        ready = systemd.having("READY", "1")[0].at
        assert all(n.at >= ready for n in systemd.having("WATCHDOG")), "WATCHDOG before READY"
        assert systemd.having("STOPPING")[0].at > ready
