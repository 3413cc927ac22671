"""Log lines: the stream they are about and the trace they belong to, in both formats, with
credentials still removed; and `vigil run --log-format json` for a real process."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.conftest import Spans
from tests.support.media import environment_without_vigil, wait_for
from vigil.observability import tracing
from vigil.observability.logging import setup_logging, stream_context

logger = logging.getLogger("vigil.test")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_vigil", False):
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_json_lines_carry_the_stream_and_the_trace(
    capsys: pytest.CaptureFixture[str], spans: Spans
) -> None:
    setup_logging("info", "json")

    def about_gate() -> None:
        logger.info("gate: starting -> streaming")
        with tracing.span("stream.start", stream="gate") as current:
            logger.warning("camera at rtsp://admin:hunter2@10.0.0.5/live refused us")
            expected = format(current.get_span_context().trace_id, "032x")
        logger.info("no span any more")
        assert expected

    stream_context("gate").run(about_gate)
    logger.info("not about a stream")
    first, second, third, fourth = (json.loads(line) for line in _lines(capsys))
    assert first["stream"] == "gate" and "trace_id" not in first
    assert second["stream"] == "gate"
    assert second["trace_id"] == format(spans.named("stream.start")[0].context.trace_id, "032x")
    assert second["span_id"] == format(spans.named("stream.start")[0].context.span_id, "016x")
    assert "hunter2" not in second["message"] and "admin:***@" in second["message"]
    assert third["stream"] == "gate" and "trace_id" not in third
    assert "stream" not in fourth


def test_text_lines_name_the_stream_once_and_show_the_trace(
    capsys: pytest.CaptureFixture[str], spans: Spans
) -> None:
    setup_logging("info", "text")

    def about_gate() -> None:
        logger.info("gate: starting -> streaming")  # names it already
        logger.info("playing H264 over interleaved TCP")  # shared code, e.g. the RTSP client
        with tracing.span("config.apply"):
            logging.getLogger("vigil.config").info("configuration applied")

    stream_context("gate").run(about_gate)
    first, second, third = _lines(capsys)
    assert first.endswith("vigil.test: gate: starting -> streaming")
    assert second.endswith("vigil.test: gate: playing H264 over interleaved TCP")
    trace_id = format(spans.named("config.apply")[0].context.trace_id, "032x")
    assert third.endswith(f"vigil.config: [trace {trace_id}] gate: configuration applied")


async def test_tasks_started_in_a_stream_context_keep_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info", "json")

    async def work() -> None:
        await asyncio.sleep(0)
        # Blocking work handed to a thread keeps the context when it is copied along.
        context = contextvars.copy_context()
        await asyncio.get_running_loop().run_in_executor(
            None, context.run, logger.info, "in a worker thread"
        )

    await asyncio.get_running_loop().create_task(work(), context=stream_context("yard"))
    (line,) = _lines(capsys)
    assert json.loads(line)["stream"] == "yard"


def test_vigil_run_logs_json_when_asked(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "api: {listen: '127.0.0.1:0'}\n"
        "log: {format: text}\n"  # the flag wins over the file
        'streams:\n  - {name: cam, source: "test://ball?size=160x120&fps=5&bitrate=100", '
        "record: false}\n"
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "--log-format", "json", "-c", str(config)],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
            env=environment_without_vigil(),
        )  # fmt: skip
    try:
        wait_for(lambda: "-> streaming" in log.read_text(), timeout=60, message=log.read_text())
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert code == 0, log.read_text()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    state = next(r for r in records if r["message"].startswith("cam: starting -> streaming"))
    assert (state["stream"], state["level"], state["logger"]) == (
        "cam", "info", "vigil.streams.supervisor",
    )  # fmt: skip
    # Every log record is JSON; what is not JSON is the console's start-up summary.
    text_records = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR)")
    assert not any(text_records.match(line) for line in log.read_text().splitlines())
