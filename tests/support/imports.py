"""Which modules a `vigil` command imports, as a user runs it: a new `python -m vigil` process
under `-X importtime`, whose report names every module the process imported."""

from __future__ import annotations

import subprocess
import sys

from tests.support.media import environment_without_vigil

# What `vigil run` needs and no other command should pay for at start (`vigil.config`: the
# pydantic models; `vigil.store`: SQLAlchemy and Alembic).
HEAVY = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "onnxruntime", "cv2", "numpy", "gi",
         "opentelemetry", "vigil.config", "vigil.store", "vigil.app")  # fmt: skip


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m vigil ARGS`; its result and every module it imported."""
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vigil", *args],
        capture_output=True, text=True, timeout=60, env=environment_without_vigil(),
    )  # fmt: skip
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in ran.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "vigil.cli" in modules, ran.stderr[-2000:]
    return ran, modules


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of `modules` that are, or belong to, one of `names`."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))
