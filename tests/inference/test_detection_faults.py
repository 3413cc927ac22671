"""Detection never costs recording: a detector far slower than the frames, a model that is not
installed, a model file that is not a model. Each stream keeps recording without a gap; the
detector's trouble is reported where a user looks (`detections/latest`, `detection.state`)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import ClosedSegments, running_vigil, until, until_async
from tests.support.shared import models_dir
from vigil.inference.backend import Detector
from vigil.inference.types import Detection, Image

pytestmark = pytest.mark.integration

# Two cameras at 25 fps, detected at 5 fps by a detector that needs 0.5 s a frame.
SLOW_S = 0.5


class SlowDetector:
    """The real model behind a sleep: an overloaded detector (or one slow GPU-less box)."""

    def __init__(self, real: Detector) -> None:
        self._real = real
        self.provider = real.provider
        self.warnings = real.warnings

    def detect(self, images: Sequence[Image], min_score: float) -> list[list[Detection]]:
        time.sleep(SLOW_S)
        return self._real.detect(images, min_score)


async def test_a_slow_detector_skips_frames_and_recording_has_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = Detector.load

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        return SlowDetector(real_load(*args, **kwargs))

    monkeypatch.setattr(Detector, "load", slow_load)
    config = (
        "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
        f"detection: {{models_dir: {models_dir()}, workers: 1, max_batch: 1}}\n"
        "streams:\n"
        '  - {name: one, source: "test://ball?size=320x240&fps=25&gop=25", '
        "detect: {enabled: true, fps: 5, motion: {enabled: false}}}\n"
        '  - {name: two, source: "test://ball?size=320x240&fps=25&gop=25", '
        "detect: {enabled: true, fps: 5, motion: {enabled: false}}}\n"
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.api is not None and vigil.detection is not None
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["one", "two"], 4), 60, "recording did not go on")
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            for name in ("one", "two"):
                summary = (await client.get(f"/api/v1/streams/{name}")).json()["detection"]
                assert summary["state"] == "running" and summary["mode"] == "all", summary
                latest = (await client.get(f"/api/v1/streams/{name}/detections/latest")).json()
                assert latest["state"] == "running", latest
                assert latest["frames"] >= 1, latest  # it does detect, slowly
                assert latest["skipped"] > 0 and latest["skipped_fps"] > 0, latest
                gaps = (await client.get(f"/api/v1/streams/{name}/gaps")).json()["gaps"]
                assert gaps == [], gaps
        # Segments follow each other: each starts where the previous ended.
        for name in ("one", "two"):
            segments = closed.poll()[name]
            for before, after in itertools.pairwise(segments):
                assert abs((after.start - before.end).total_seconds()) < 0.5, (before, after)


async def test_a_missing_or_broken_model_is_reported_and_recording_goes_on(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an ONNX model" * 100)
    config = (
        "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
        f"detection: {{models_dir: {empty}, models: {{broken: {{path: {garbage}, "
        "family: nanodet, labels: coco-80}}}\n"
        "streams:\n"
        '  - {name: uninstalled, source: "test://ball?size=320x240&fps=10", '
        "detect: {enabled: true}}\n"
        '  - {name: corrupt, source: "test://ball?size=320x240&fps=10", '
        "detect: {enabled: true, model: broken}}\n"
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.api is not None
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["uninstalled", "corrupt"], 2), 60,
                    "recording did not go on")  # fmt: skip
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            missing = (await client.get("/api/v1/streams/uninstalled/detections/latest")).json()
            assert missing["state"] == "failed", missing
            assert "vigil models install nanodet" in missing["reason"], missing
            assert str(empty) in missing["reason"]
            broken = (await client.get("/api/v1/streams/corrupt/detections/latest")).json()
            assert broken["state"] == "failed", broken
            assert str(garbage) in broken["reason"], broken
            events = await client.get("/api/v1/events", params={"type": "detection.state"})
            states = {(e["stream"], e["state"]) for e in events.json()["events"]}
            assert {("uninstalled", "failed"), ("corrupt", "failed")} <= states

            # Detection settings change through the API without restarting the stream.
            before = (await client.get("/api/v1/streams/corrupt")).json()
            assert before["detection"]["state"] == "failed", before
            assert str(garbage) in before["detection"]["reason"]
            answer = await client.patch("/api/v1/streams/corrupt",
                                        json={"detect": {"enabled": False}})  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["config"]["detect"]["enabled"] is False

            async def detection_off() -> bool:
                latest = await client.get("/api/v1/streams/corrupt/detections/latest")
                return latest.status_code == 409

            await until_async(detection_off, 30, "detection stayed on")
            after = (await client.get("/api/v1/streams/corrupt")).json()
            assert after["detection"] is None, after
            assert (after["since"], after["transitions"]) == (before["since"],
                                                               before["transitions"])  # fmt: skip
            # A misspelt label or an unknown model is refused, naming the problem.
            answer = await client.patch(
                "/api/v1/streams/uninstalled",
                json={"detect": {"enabled": True, "labels": ["persn"]}},
            )
            assert answer.status_code == 422 and "did you mean 'person'" in answer.text
            answer = await client.patch(
                "/api/v1/streams/uninstalled", json={"detect": {"enabled": True, "model": "nosuch"}}
            )
            assert answer.status_code == 422 and "unknown model 'nosuch'" in answer.text


def test_every_model_family_of_the_config_has_an_adapter() -> None:
    from vigil.config.detection import ModelFamily
    from vigil.inference.adapters import ADAPTERS

    assert {family.value for family in ModelFamily} == set(ADAPTERS)
