"""A watched camera is read at once; an unwatched one in batches. The RTSP/TCP reader's
low-water mark (`ingest.rtsp_read_batch_ms`) saves CPU on cameras only recorded, but delays
every frame by up to that long: it is dropped while a viewer watches and comes back after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serve.rtsp_client import Reader
from tests.support.faults import SimCamera
from tests.support.service import running_vigil, until
from vigil.app import Vigil
from vigil.media.rtsp_tcp import RtspTcpSource

pytestmark = pytest.mark.integration


def _mark(vigil: Vigil, stream: str) -> Callable[[], int]:
    def read() -> int:
        assert vigil.streams is not None
        pipeline = vigil.streams._supervisors[stream]._pipeline
        source = pipeline.source if pipeline is not None else None
        return source.low_water_mark if isinstance(source, RtspTcpSource) else -1

    return read


async def test_the_low_water_mark_is_off_while_someone_watches(tmp_path: Path) -> None:
    camera = SimCamera(size="320x240", fps=25)
    camera.start()
    try:
        config = (
            f"data_dir: {tmp_path / 'data'}\ningest: {{rtsp_read_batch_ms: 40}}\n"
            f"streams:\n  - {{name: cam, source: {camera.url()}, transport: tcp, record: false}}\n"
        )
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.rtsp is not None
            mark = _mark(vigil, "cam")
            await until(lambda: mark() > 1, 30, "the mark was never raised for an unwatched camera")
            reader = Reader(vigil.rtsp.url_pattern.replace("<stream>", "cam"))
            reader.start()
            try:
                await until(lambda: reader.frames > 5, 30, "the viewer got no frames")
                assert mark() == 1, "a watched camera is still read in batches"
            finally:
                reader.stop()
            # The shared media goes with its last viewer; the batching comes back.
            await until(lambda: mark() > 1, 30, "the mark did not come back")
    finally:
        camera.stop()
