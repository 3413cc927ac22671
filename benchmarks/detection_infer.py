"""Per-frame inference time of the default detector: real frames of vtest.avi, decoded once by
ffmpeg, run through `vigil.inference.backend.Detector` at several batch sizes and thread counts.
Also what the other detection benchmarks share: the model, its labels and the test footage."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tests.support.shared import nanodet_model, vtest_avi

if TYPE_CHECKING:
    from vigil.inference.backend import Detector

MIN_SCORE = 0.35  # what the models README found best; the stream default (0.5) changes little


def shared() -> tuple[Path, Path]:
    """(the default model's ONNX file, vtest.avi), found as the tests find them."""
    return nanodet_model(), vtest_avi()


def load_detector(model: Path, threads: int) -> Detector:
    """The default model on the CPU with `threads` intra-op threads (0: onnxruntime chooses)."""
    from vigil.inference.backend import Detector
    from vigil.inference.catalogue import model_spec
    from vigil.inference.labels import builtin_labels

    spec = model_spec("nanodet")
    return Detector.load(
        model, family=spec.family, labels=builtin_labels(spec.labels), providers=["cpu"],
        threads=threads,
    )  # fmt: skip


def decode_frames(video: Path, width: int, height: int, count: int, every: int) -> np.ndarray:
    """`count` BGR frames of `video` (every `every`-th), scaled to width x height, as
    [count, height, width, 3] uint8; decoded once by ffmpeg."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-vf",
         f"select=not(mod(n\\,{every})),scale={width}:{height}", "-fps_mode", "passthrough",
         "-frames:v", str(count), "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:"],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    frames = np.frombuffer(out, np.uint8)
    got = frames.size // (width * height * 3)
    if got == 0:
        raise RuntimeError(f"ffmpeg decoded no frame of {video}")
    return frames[: got * width * height * 3].reshape(got, height, width, 3)


@dataclass(frozen=True)
class Timing:
    """Per-frame inference time of one (threads, batch) setting."""

    threads: int
    batch: int
    runs: int  # detect() calls measured
    per_frame_ms: list[float]  # one value per call: its time / batch
    detections: float  # mean objects per frame (a sanity check: the model sees people)

    def p(self, fraction: float) -> float:
        values = sorted(self.per_frame_ms)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.per_frame_ms) if self.per_frame_ms else float("nan")


def time_inference(
    model: Path, frames: np.ndarray, threads: int, batch: int, frames_per_setting: int
) -> Timing:
    """Time `Detector.detect` on batches of `batch` consecutive frames (cycling through
    `frames`) until `frames_per_setting` frames were run, after two warm-up calls."""
    detector = load_detector(model, threads)
    images = [np.ascontiguousarray(frame) for frame in frames]
    for start in (0, batch):
        detector.detect([images[(start + i) % len(images)] for i in range(batch)], MIN_SCORE)
    per_frame, found, offset = [], 0, 0
    for _ in range(max(1, frames_per_setting // batch)):
        chunk = [images[(offset + i) % len(images)] for i in range(batch)]
        offset += batch
        started = time.perf_counter()
        results = detector.detect(chunk, MIN_SCORE)
        per_frame.append(1000 * (time.perf_counter() - started) / batch)
        found += sum(len(r) for r in results)
    return Timing(threads, batch, len(per_frame), per_frame, found / (len(per_frame) * batch))


def time_session_alone(model: Path, frames: np.ndarray, threads: int, runs: int) -> Timing:
    """The same model in a plain onnxruntime session (same thread options as `Detector.load`),
    timing `session.run` alone on tensors prepared beforehand: what pre- and post-processing
    add is the difference to `time_inference` at batch 1."""
    import cv2
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    tensors = [
        cv2.dnn.blobFromImage(
            cv2.resize(frame, (416, 416)), 1 / 57.5, (416, 416), (103.53, 116.28, 123.675)
        )
        for frame in frames
    ]
    for tensor in tensors[:2]:
        session.run(None, {name: tensor})
    per_run = []
    for index in range(runs):
        started = time.perf_counter()
        session.run(None, {name: tensors[index % len(tensors)]})
        per_run.append(1000 * (time.perf_counter() - started))
    return Timing(threads, 1, runs, per_run, float("nan"))


@dataclass(frozen=True)
class Arithmetic:
    """What one frame costs the model in arithmetic, against what this core can do."""

    gflop: float  # per frame, convolutions only (2 x multiply-adds)
    convs: int
    core_gflops: float  # this core's dense FP32 rate (sgemm, one thread)

    @property
    def floor_ms(self) -> float:
        """No FP32 run of the model on one core can be faster than this."""
        return 1000 * self.gflop / self.core_gflops

    def gflops_at(self, ms: float) -> float:
        """The arithmetic rate a run of `ms` per frame achieves (or needs)."""
        return self.gflop / (ms / 1000) if ms > 0 else float("nan")


def arithmetic(model: Path) -> Arithmetic:
    gflop, convs = model_gflop(model)
    return Arithmetic(gflop, convs, core_gflops())


def model_gflop(model: Path) -> tuple[float, int]:
    """(GFLOP of one frame through the model's convolutions, how many there are): 2 x the
    multiply-adds of each Conv, from the tensor shapes of one run in an unoptimised ONNX Runtime
    profile (no `onnx` package needed: the product's venv has only the runtime)."""
    import json
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="vigil-bench-profile-") as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        session.run(None, {spec.name: np.zeros(shape, np.float32)})
        events = json.loads(Path(session.end_profiling()).read_text())
    flop, convs = 0.0, 0
    for event in events:
        args = event.get("args", {})
        if event.get("cat") != "Node" or args.get("op_name") != "Conv":
            continue
        if not event.get("name", "").endswith("_kernel_time"):
            continue
        (out,) = args["output_type_shape"][0].values()
        (weight,) = args["input_type_shape"][1].values()  # [C_out, C_in / group, kH, kW]
        flop += 2.0 * float(np.prod(out)) * float(np.prod(weight[1:]))
        convs += 1
    return flop / 1e9, convs


_SGEMM = """
import time, numpy as np
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
b = a.T.copy()
a @ b
times = []
for _ in range(5):
    started = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - started)
print(2 * 2048**3 / min(times) / 1e9)
"""


def core_gflops() -> float:
    """This core's dense FP32 rate, GFLOP/s: numpy's BLAS (OpenBLAS) multiplying 2048x2048
    matrices on one thread, best of 5 — the roofline a convolution cannot beat without doing
    less arithmetic (Winograd, int8). Run in a child so the BLAS starts with one thread."""
    one = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _SGEMM], capture_output=True, text=True, check=True,
        timeout=120, env={**os.environ, **one},
    ).stdout  # fmt: skip
    return float(out.strip())
