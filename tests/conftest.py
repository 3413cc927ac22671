"""Fixtures every test package may use (a migrated database in a temporary directory), and how
the suite is spread over pytest-xdist workers.

`-n auto --dist loadfile --no-loadscope-reorder` is in pyproject's addopts, and "auto" is
decided here: the whole suite (no test paths, no `-k`) runs on `WORKERS` workers, because most
of its time is spent waiting on real pipelines, processes and browsers; a selection runs in this
one process, as before, since every worker pays for a full collection (seconds of imports)
before it runs anything. `-n N` on the command line wins, and so does
`PYTEST_XDIST_AUTO_NUM_WORKERS`.

Whole modules go to a worker (`loadfile`), not single tests: pytest-xdist 3.8's `loadgroup`
groups nothing under pytest 9.2 (pytest-dev/pytest-xdist#1386), and a module's fixtures wider
than a test must be set up once, its tests run in their written order, as they do serially.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.store.db import Database

# Measured on the 2-core CI box (docs/PERFORMANCE.md, "Test suite"): see the figures there
# before changing it.
WORKERS = 3


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state" / "vigil.db")
    database.migrate()
    with database:
        yield database


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers `-n auto` starts: WORKERS for the whole suite, 0 (no xdist) for a
    selection of it."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if forced:
        return int(forced)
    whole_suite = (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and not config.getoption("keyword")
        and not config.getoption("lf", False)
        and not config.getoption("stepwise", False)
    )
    return WORKERS if whole_suite else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers: the modules of end-to-end tests first, then those of integration
    tests, then the rest, so that none of the long ones starts last and runs alone while the
    other workers have finished. A stable sort of whole modules: `--dist loadfile` gives each
    module to one worker, which runs its tests in their written order and sets its module
    fixtures (a `vigil run` with Chromium, an RTSP server) up once."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # not distributed: the order stays as written
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        rank[module] = min(rank.get(module, 2), _start_order(item))
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


# Long without being marked so: mypy over the whole tree, from no cache in a fresh clone (CI).
UNMARKED_SLOW = ("tests/test_quality.py",)


def _start_order(item: pytest.Item) -> int:
    if item.get_closest_marker("e2e"):
        return 0
    if item.get_closest_marker("integration") or item.nodeid.startswith(UNMARKED_SLOW):
        return 1
    return 2
