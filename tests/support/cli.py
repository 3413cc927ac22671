"""Run the `vigil` command line in process, the way a user's shell would call it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from typer.testing import CliRunner

from vigil.cli import app


@dataclass(frozen=True)
class Ran:
    """What a user sees: the exit code, stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_vigil(*args: str, url: str, token: str | None = None) -> Ran:
    """`vigil ARGS` with VIGILCTL_URL / VIGILCTL_TOKEN set, in a worker thread: the API it
    talks to is served by the test's own event loop, which must keep running meanwhile."""
    env = {"VIGILCTL_URL": url, "VIGILCTL_TOKEN": token, "COLUMNS": "200"}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)
