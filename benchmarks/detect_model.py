"""Detection model timing on this machine: per-frame p50 at batch 1 by thread count, and
cross-stream batches as (a) a loop of single runs vs. (b) one run of the same model with its
batch dimension made symbolic.

    .venv/bin/python -m benchmarks.detect_model [--model PATH] [--repeats N]

Part (b) edits the model in memory with the `onnx` package, which is not a Vigil dependency;
without it that part is skipped (`PYTHONPATH=<dir with onnx>` to run it). Frames are vtest.avi's
100th onwards, scaled to 640x480 as the pipeline delivers them; times are `Detector.detect`
end to end (preprocess, run, decode). The load average and CPU pressure are printed: on a shared
2-core machine they say how much the numbers are worth (`--wait-quiet S` waits for a quieter
moment first)."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.shared import nanodet_model, vtest_avi
from vigil.inference.backend import Detector
from vigil.inference.labels import builtin_labels
from vigil.inference.types import Detection, Image

WIDTH, HEIGHT = 640, 480
MIN_SCORE = 0.35


def frames(count: int) -> list[Image]:
    """`count` consecutive frames of vtest.avi from frame 100, BGR at 640x480."""
    raw = subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-i", str(vtest_avi()),
            "-vf", f"select=gte(n\\,100),scale={WIDTH}:{HEIGHT}", "-frames:v", str(count),
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-",
        ],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    array = np.frombuffer(raw, dtype=np.uint8).reshape(count, HEIGHT, WIDTH, 3)
    return [np.ascontiguousarray(frame) for frame in array]


def cpu_pressure() -> float:
    """The share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in
    percent; -1 where the kernel does not say."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return -1.0
    return float(first.split()[1].removeprefix("avg10="))


def wait_quiet(limit_s: float, below: float = 20.0) -> None:
    """Wait (up to `limit_s`) until CPU pressure drops below `below` percent: other people's
    test runs on a 2-core machine multiply every figure."""
    deadline = time.monotonic() + limit_s
    while (pressure := cpu_pressure()) >= below and time.monotonic() < deadline:
        print(f"waiting for a quieter machine: CPU pressure {pressure:.0f}%", flush=True)
        time.sleep(10)


def conditions() -> str:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"load average {load}, CPU pressure (avg10) {cpu_pressure():.0f}%"


def timed(
    calls: Sequence[Callable[[], object]], repeats: int, warmup: int = 5
) -> list[list[float]]:
    """Milliseconds per call for each of `calls`, taken in turns (a, b, a, b, ...) so that
    whatever else the machine does weighs on each alike."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, series in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            series.append((time.perf_counter() - start) * 1000)
    return times


def detect(detector: Detector, images: Sequence[Image]) -> object:
    return detector.detect(images, MIN_SCORE)


def agree(first: list[list[Detection]], second: list[list[Detection]]) -> bool:
    """Same labels in the same order, scores and corners within 1e-3 (batched kernels may
    round differently)."""
    return len(first) == len(second) and all(
        len(a) == len(b)
        and all(
            x.label == y.label
            and abs(x.score - y.score) < 1e-3
            and np.allclose(x.box.as_tuple(), y.box.as_tuple(), atol=1e-3)
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(first, second, strict=True)
    )


def symbolic_batch_copy(model: Path, folder: Path) -> tuple[Path, list[str]]:
    """A copy of the model with a symbolic batch dimension, and notes on what had to change.

    The TF.js conversion computes its output Reshapes' target shapes as [1, C, -1]: left alone,
    a batch of 4 would be folded into one image's cells without any error. Those shapes are
    evaluated once and replaced by constants with 0 (copy the input's dimension) for batch."""
    onnx: Any = importlib.import_module("onnx")
    numpy_helper: Any = importlib.import_module("onnx.numpy_helper")
    ort: Any = importlib.import_module("onnxruntime")

    proto = onnx.load(str(model))
    graph = proto.graph
    shape_names = sorted({node.input[1] for node in graph.node if node.op_type == "Reshape"})
    probe = onnx.load(str(model))
    for name in shape_names:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None)
        )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    input_shape = [dim.dim_value for dim in graph.input[0].type.tensor_type.shape.dim]
    values = session.run(shape_names, {graph.input[0].name: np.zeros(input_shape, np.float32)})
    notes = []
    for name, value in zip(shape_names, values, strict=True):
        if value[0] != 1:
            continue
        notes.append(f"Reshape target {value.tolist()} hard-codes batch 1; patched to 0")
        patched = value.copy()
        patched[0] = 0
        graph.initializer.append(numpy_helper.from_array(patched, name + "/any_batch"))
        for node in graph.node:
            if node.op_type == "Reshape" and node.input[1] == name:
                node.input[1] = name + "/any_batch"
    for value_info in [*graph.input, *graph.output]:
        value_info.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]
    path = folder / "symbolic-batch.onnx"
    onnx.save(proto, str(path))
    return path, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument(
        "--wait-quiet", type=float, default=0, help="seconds to wait for a quieter machine"
    )
    args = parser.parse_args()
    model: Path = args.model or nanodet_model()
    repeats: int = args.repeats
    labels = builtin_labels("coco-80")
    images = frames(8)
    print(f"model {model.name}, {os.cpu_count()} CPUs, frames {WIDTH}x{HEIGHT}")
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    print(f"before: {conditions()}")

    print("\nbatch 1, Detector.detect end to end, ms per frame (runs taken in turns)")
    by_threads = {
        threads: Detector.load(model, family="nanodet", labels=labels, threads=threads)
        for threads in (1, 2)
    }
    calls = [functools.partial(detect, d, images[:1]) for d in by_threads.values()]
    for threads, times in zip(by_threads, timed(calls, repeats), strict=True):
        p90 = statistics.quantiles(times, n=10)[8]
        print(f"  threads {threads}: p50 {statistics.median(times):.1f}  p90 {p90:.1f}")

    ort: Any = importlib.import_module("onnxruntime")
    sessions = []
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions.append(
            ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        )
    tensor = np.random.default_rng(0).random((1, 3, 416, 416), dtype=np.float32)
    feed = {sessions[0].get_inputs()[0].name: tensor}
    runs_only = timed([functools.partial(s.run, None, feed) for s in sessions], repeats)
    print("  model run only (session.run): " + ", ".join(
        f"threads {t}: p50 {statistics.median(times):.1f}"
        for t, times in zip((1, 2), runs_only, strict=True)
    ))  # fmt: skip

    print("\ncross-stream batches, threads 2, ms per image (median of runs / batch)")
    looped = by_threads[2]
    with tempfile.TemporaryDirectory() as folder:
        symbolic: Detector | None = None
        try:
            path, notes = symbolic_batch_copy(model, Path(folder))
        except ImportError:
            print("  (b) skipped: the onnx package is not installed")
        else:
            symbolic = Detector.load(path, family="nanodet", labels=labels, threads=2)
            assert symbolic.max_batch is None
            for note in notes:
                print(f"  note: {note}")
        for batch in (4, 8):
            chunk = images[:batch]
            runs = max(repeats // 4, 10)
            detectors = [looped] if symbolic is None else [looped, symbolic]
            medians = [
                statistics.median(times)
                for times in timed([functools.partial(detect, d, chunk) for d in detectors], runs)
            ]
            line = f"  batch {batch}: (a) loop of single runs {medians[0] / batch:.1f}"
            if symbolic is not None:
                same = agree(symbolic.detect(chunk, MIN_SCORE), looped.detect(chunk, MIN_SCORE))
                line += f"   (b) one batched run {medians[1] / batch:.1f}   same detections: {same}"
            print(line)
    print(f"\nafter: {conditions()}")


if __name__ == "__main__":
    main()
