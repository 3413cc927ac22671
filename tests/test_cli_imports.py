"""`vigil version` and `vigil --help` answer without loading what only other commands need.

Each command is run as a user runs it (a new `python -m vigil` process) under `-X importtime`,
whose report names every module the process imported: a heavy import creeping back into the
command line's registration shows here by name, on any machine, with no timing asserted."""

from __future__ import annotations

import pytest

from tests.support.imports import HEAVY, heavy, imported_modules


def test_version_loads_nothing_heavy() -> None:
    ran, modules = imported_modules("version")
    assert ran.returncode == 0 and ran.stdout.strip(), ran.stderr[-2000:]
    assert heavy(modules, (*HEAVY, "httpx", "pydantic", "rich")) == []


@pytest.mark.parametrize(
    "args",
    [("--help",), ("streams", "--help"), ("storage", "reindex", "--help"), ("run", "--help")],
)
def test_help_loads_nothing_heavy(args: tuple[str, ...]) -> None:
    ran, modules = imported_modules(*args)
    assert ran.returncode == 0 and ran.stdout.startswith("Usage: "), ran.stderr[-2000:]
    assert heavy(modules, (*HEAVY, "httpx")) == []
