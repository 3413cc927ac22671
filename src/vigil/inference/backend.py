"""The ONNX Runtime backend: execution-provider discovery and a thread-safe `Detector` that runs
one model through its family's adapter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # no stubs or py.typed
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors  # type: ignore[import-untyped]

from vigil.inference.adapters import Adapter, adapter_for
from vigil.inference.adapters.base import ModelError, Placement, Tensor
from vigil.inference.catalogue import is_catalogued_file
from vigil.inference.types import Detection, Image
from vigil.inference.vet import vet_model

__all__ = ["PROVIDERS", "Detector", "ModelError", "select_providers"]

logger = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO = "auto"
_AUTO_ORDER = ("tensorrt", "cuda", "cpu")

# What onnxruntime raises for a file it cannot load; none derive from a common base but
# Exception, and catching Exception would hide our own bugs.
_LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidProtobuf,
    ort_errors.InvalidGraph,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


def select_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """onnxruntime execution providers for `requested` names, in preference order, and warnings.

    `"auto"` takes TensorRT, then CUDA, then the CPU, as far as onnxruntime offers them
    (`available` defaults to `onnxruntime.get_available_providers()`). A named provider that is
    not available is skipped with a warning naming it and what is available. The CPU is always
    present, and last. ValueError for a name that is none of `auto` and `PROVIDERS`."""
    names = [name.strip().lower() for name in requested] or [AUTO]
    unknown = [name for name in names if name != AUTO and name not in PROVIDERS]
    if unknown:
        raise ValueError(
            f"unknown execution provider {unknown[0]!r} (known: {AUTO}, {', '.join(PROVIDERS)})"
        )
    offered = list(ort.get_available_providers() if available is None else available)
    chosen: list[str] = []
    missing: list[str] = []
    for name in names:
        for candidate in _AUTO_ORDER if name == AUTO else (name,):
            provider = PROVIDERS[candidate]
            if provider in offered or candidate == "cpu":
                if provider not in chosen:
                    chosen.append(provider)
            elif name != AUTO and candidate not in missing:
                missing.append(candidate)
    cpu = PROVIDERS["cpu"]
    chosen = [provider for provider in chosen if provider != cpu] + [cpu]
    warnings = [
        f"execution provider {name!r} ({PROVIDERS[name]}) is not available in this "
        f"onnxruntime (available: {', '.join(offered) or 'none'}); using {chosen[0]}"
        for name in missing
    ]
    return chosen, warnings


class Detector:
    """One loaded model: `detect` turns images into detections. Safe to call from several
    threads at once (onnxruntime sessions are; the adapter holds no per-call state)."""

    def __init__(
        self,
        path: Path,
        session: ort.InferenceSession,
        adapter: Adapter,
        labels: Sequence[str],
        warnings: Sequence[str],
    ) -> None:
        self.path = path
        self.labels = tuple(labels)
        self.warnings = tuple(warnings)
        self._session = session
        self._adapter = adapter
        self._output_names = [output.name for output in session.get_outputs()]

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        family: str,
        labels: Sequence[str],
        providers: Sequence[str] = (AUTO,),
        threads: int = 0,
        input_size: int | None = None,
    ) -> Detector:
        """Open the ONNX model at `path` as a model of `family` with these labels.

        `providers` as for `select_providers` (its warnings are logged and kept in
        `.warnings`); `threads` sets the session's intra-op threads (0: onnxruntime chooses);
        `input_size` is used for a symbolic input height or width instead of the family's
        default. `ModelError` naming the path for a missing or unreadable file, a model that
        does not fit the family, or labels whose count is not the model's class count."""
        path = Path(path)
        if threads < 0:
            raise ValueError(f"threads must be 0 (onnxruntime chooses) or more, not {threads}")
        if not path.is_file():
            raise ModelError(
                f"{path}: model file not found; install the default model with "
                "`vigil models install`, or correct the path"
            )
        # A file that is not a pinned build is opened in a child process first: a damaged one
        # can crash ONNX Runtime, and with it all of Vigil (see `vigil.inference.vet`).
        if not is_catalogued_file(path) and (problem := vet_model(path)) is not None:
            raise ModelError(f"{path}: not a usable ONNX model (corrupt?): {problem}")
        chosen, warnings = select_providers(providers)
        for warning in warnings:
            logger.warning("%s: %s", path.name, warning)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One model run at a time per call; parallelism comes from intra-op threads and from
        # callers running several detect() calls at once.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except _LOAD_ERRORS as error:
            raise ModelError(f"{path}: not a usable ONNX model (corrupt?): {error}") from None
        try:
            adapter = adapter_for(
                family, session.get_inputs(), session.get_outputs(), input_size=input_size
            )
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None
        if adapter.num_classes is not None and adapter.num_classes != len(labels):
            raise ModelError(
                f"{path}: the model has {adapter.num_classes} classes but {len(labels)} labels "
                "were given; use the labels file the model was trained with"
            )
        used = session.get_providers()[0]
        if used != chosen[0]:
            # e.g. TensorRT offered by the build but its libraries missing at run time
            warning = f"asked for {chosen[0]} but the session runs on {used}"
            logger.warning("%s: %s", path.name, warning)
            warnings.append(warning)
        logger.info(
            "%s: %s model, input %dx%d, on %s",
            path.name,
            family,
            adapter.input_width,
            adapter.input_height,
            used,
        )
        return cls(path, session, adapter, labels, warnings)

    @property
    def family(self) -> str:
        return self._adapter.family

    @property
    def provider(self) -> str:
        """The execution provider the session really uses (e.g. `CPUExecutionProvider`)."""
        return str(self._session.get_providers()[0])

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input as (width, height) in pixels."""
        return (self._adapter.input_width, self._adapter.input_height)

    @property
    def max_batch(self) -> int | None:
        """How many images one model run takes: the model's fixed batch size (1 for the default
        model), or None when its batch dimension is symbolic."""
        return self._adapter.batch_size

    def detect(self, images: Sequence[Image], min_score: float) -> list[list[Detection]]:
        """Detections for each image (one list per image, in order), scores >= min_score,
        boxes normalised to each image. The floor applies before NMS; filters by label or
        zone are the caller's. Images larger than `max_batch` are run in several runs."""
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within 0..1, not {min_score}")
        prepared = [self._adapter.preprocess(image) for image in images]
        step = self.max_batch or max(len(prepared), 1)
        results: list[list[Detection]] = []
        for start in range(0, len(prepared), step):
            results += self._run(prepared[start : start + step], min_score)
        return results

    def _run(
        self, chunk: Sequence[tuple[Tensor, Placement]], min_score: float
    ) -> list[list[Detection]]:
        tensors = [tensor for tensor, _ in chunk]
        batch = tensors[0] if len(tensors) == 1 else np.concatenate(tensors)
        outputs = self._session.run(self._output_names, {self._adapter.input_name: batch})
        results = []
        for index, (_, placement) in enumerate(chunk):
            mine = {
                name: np.asarray(output)[index : index + 1]
                for name, output in zip(self._output_names, outputs, strict=True)
            }
            results.append(self._adapter.decode(mine, placement, self.labels, min_score))
        return results
