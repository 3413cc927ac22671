"""The ONNX Runtime backend: provider selection and fallback, loading errors, and the Detector
on the real default model."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.support.shared import nanodet_model
from vigil.inference.adapters import TensorSpec
from vigil.inference.adapters.yolov8 import YoloV8Adapter
from vigil.inference.backend import PROVIDERS, Detector, ModelError, select_providers
from vigil.inference.labels import builtin_labels

CPU, CUDA, TRT = PROVIDERS["cpu"], PROVIDERS["cuda"], PROVIDERS["tensorrt"]
COCO = builtin_labels("coco-80")


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        (["auto"], [CPU], [CPU]),
        (["auto"], [TRT, CUDA, CPU], [TRT, CUDA, CPU]),
        (["auto"], [CUDA, "AzureExecutionProvider", CPU], [CUDA, CPU]),
        ([], [CUDA, CPU], [CUDA, CPU]),
        (["cpu"], [TRT, CUDA, CPU], [CPU]),
        (["cuda"], [TRT, CUDA, CPU], [CUDA, CPU]),
        (["cpu", "cuda"], [CUDA, CPU], [CUDA, CPU]),  # the CPU is always last
        ([" CUDA "], [CUDA, CPU], [CUDA, CPU]),
    ],
)
def test_select_providers(requested: list[str], available: list[str], expected: list[str]) -> None:
    assert select_providers(requested, available) == (expected, [])


def test_a_missing_provider_warns_naming_it_and_what_is_available() -> None:
    chosen, warnings = select_providers(["tensorrt", "cuda"], [CUDA, CPU])
    assert chosen == [CUDA, CPU]
    assert warnings == [
        "execution provider 'tensorrt' (TensorrtExecutionProvider) is not available in this "
        "onnxruntime (available: CUDAExecutionProvider, CPUExecutionProvider); "
        "using CUDAExecutionProvider"
    ]


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown execution provider 'gpu' \(known: auto, "):
        select_providers(["gpu"], [CPU])


def test_auto_on_this_onnxruntime_is_the_cpu() -> None:
    assert select_providers(["auto"]) == ([CPU], [])


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(nanodet_model(), family="nanodet", labels=COCO, threads=1)


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    from tests.inference.test_nanodet_vtest import vtest_frame

    return vtest_frame(100)


def test_the_default_model(detector: Detector) -> None:
    assert detector.provider == CPU
    assert detector.warnings == ()
    assert detector.input_size == (416, 416)
    assert detector.max_batch == 1
    assert detector.family == "nanodet"


def test_detect_gives_one_list_per_image(detector: Detector, street: np.ndarray) -> None:
    blank = np.zeros((480, 640, 3), dtype=np.uint8)
    seen, empty, again = detector.detect([street, blank, street], 0.35)
    assert empty == []
    assert seen == again
    assert sum(d.label == "person" for d in seen) >= 6
    assert all(d.score >= 0.35 for d in seen)
    assert [d.score for d in seen] == sorted((d.score for d in seen), reverse=True)
    assert detector.detect([], 0.35) == []


def test_a_lower_floor_gives_more(detector: Detector, street: np.ndarray) -> None:
    (high,) = detector.detect([street], 0.6)
    (low,) = detector.detect([street], 0.35)
    assert 0 < len(high) < len(low)


def test_concurrent_calls_agree(detector: Detector, street: np.ndarray) -> None:
    flipped = np.ascontiguousarray(street[:, ::-1])
    expected = detector.detect([street, flipped], 0.35)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: detector.detect([street, flipped], 0.35), range(8)))
    assert all(result == expected for result in results)


def test_detect_refuses_a_floor_outside_0_to_1(detector: Detector, street: np.ndarray) -> None:
    with pytest.raises(ValueError, match="min_score"):
        detector.detect([street], 1.5)


@pytest.mark.parametrize("asked", ["cuda", "tensorrt"])
def test_asking_for_a_gpu_falls_back_to_the_cpu_with_a_warning(
    asked: str, street: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vigil.inference.backend"):
        fallback = Detector.load(nanodet_model(), family="nanodet", labels=COCO, providers=[asked])
    assert fallback.provider == CPU
    (warning,) = fallback.warnings
    assert f"execution provider '{asked}' ({PROVIDERS[asked]}) is not available" in warning
    assert "CPUExecutionProvider" in warning
    assert warning in caplog.text
    (seen,) = fallback.detect([street], 0.35)
    assert sum(d.label == "person" for d in seen) >= 6


def test_an_unknown_provider_is_refused_before_loading() -> None:
    with pytest.raises(ValueError, match="unknown execution provider 'npu'"):
        Detector.load(nanodet_model(), family="nanodet", labels=COCO, providers=["npu"])


def test_a_missing_file_names_the_path_and_the_install_command(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ModelError, match="vigil models install") as caught:
        Detector.load(missing, family="nanodet", labels=COCO)
    assert str(missing) in str(caught.value)


def test_a_corrupt_file_names_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x13not a model\xff" * 500)
    with pytest.raises(ModelError, match="not a usable ONNX model") as caught:
        Detector.load(garbage, family="nanodet", labels=COCO)
    assert str(garbage) in str(caught.value)


def test_a_model_of_another_family_names_the_path_and_the_family() -> None:
    with pytest.raises(ModelError) as caught:
        Detector.load(nanodet_model(), family="yolov8", labels=COCO)
    message = str(caught.value)
    assert message.startswith(f"{nanodet_model()}: the model does not fit family 'yolov8'")
    assert "Identity_3:0 [1, 2704, 44] float" in message


def test_an_unknown_family_names_the_path() -> None:
    with pytest.raises(ModelError, match="unknown model family 'nanodet2'") as caught:
        Detector.load(nanodet_model(), family="nanodet2", labels=COCO)
    assert str(nanodet_model()) in str(caught.value)


def test_labels_that_do_not_match_the_class_count() -> None:
    with pytest.raises(ModelError, match="has 80 classes but 3 labels were given") as caught:
        Detector.load(nanodet_model(), family="nanodet", labels=["person", "car", "truck"])
    assert str(nanodet_model()) in str(caught.value)


class RecordingSession:
    """Stands in for an onnxruntime session of a YOLOv8 model with a symbolic batch: each image
    of a batch gets one box whose x centre is its index in the batch."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_outputs(self) -> list[TensorSpec]:
        return [TensorSpec("output0", ("batch", 4 + 3, 100))]

    def get_providers(self) -> list[str]:
        return [CPU]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (batch,) = feed.values()
        self.batches.append(len(batch))
        out = np.zeros((len(batch), 4 + 3, 100), dtype=np.float32)
        for index in range(len(batch)):
            out[index, :, 0] = [64 * (index + 1), 320, 20, 20, 0.9, 0, 0]
        return [out]


@pytest.mark.parametrize(
    ("batch_dim", "runs", "indices"),
    [("batch", [5], [0, 1, 2, 3, 4]), (2, [2, 2, 1], [0, 1, 0, 1, 0])],
)
def test_a_batch_is_run_as_the_model_allows_and_split_per_image(
    batch_dim: int | str, runs: list[int], indices: list[int]
) -> None:
    session = RecordingSession()
    adapter = YoloV8Adapter([TensorSpec("images", (batch_dim, 3, 640, 640))], session.get_outputs())
    detector = Detector(Path("fake.onnx"), session, adapter, ["person", "car", "dog"], [])
    assert detector.max_batch == (None if batch_dim == "batch" else 2)
    square = np.zeros((640, 640, 3), dtype=np.uint8)
    results = detector.detect([square] * 5, 0.35)
    assert session.batches == runs
    # each image got the box of its own place in its run
    centres = [round(result[0].box.centre[0] * 640) for result in results]
    assert centres == [64 * (index + 1) for index in indices]
