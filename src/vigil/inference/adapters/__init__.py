"""Model-family adapters: each turns an image into its family's input tensor and that family's
output tensors back into detections. `adapter_for` picks one by family name."""

from __future__ import annotations

from collections.abc import Sequence

from vigil.inference.adapters.base import Adapter, ModelError, Placement, TensorInfo, TensorSpec
from vigil.inference.adapters.nanodet import NanoDetAdapter
from vigil.inference.adapters.ssd import SsdAdapter
from vigil.inference.adapters.yolov5 import YoloV5Adapter
from vigil.inference.adapters.yolov8 import YoloV8Adapter
from vigil.inference.labels import closest

ADAPTERS: dict[str, type[NanoDetAdapter | YoloV8Adapter | YoloV5Adapter | SsdAdapter]] = {
    "nanodet": NanoDetAdapter,
    "yolov8": YoloV8Adapter,
    "yolov5": YoloV5Adapter,
    "ssd": SsdAdapter,
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "ModelError",
    "Placement",
    "TensorInfo",
    "TensorSpec",
    "adapter_for",
]


def adapter_for(
    family: str,
    session_inputs: Sequence[TensorInfo],
    session_outputs: Sequence[TensorInfo],
    *,
    input_size: int | None = None,
) -> Adapter:
    """The adapter of `family` fitted to a model's inputs and outputs (`onnxruntime.NodeArg`s
    or `TensorSpec`s). `input_size` replaces the family's default for a symbolic height or
    width. `ModelError` for an unknown family or a model that does not fit it."""
    adapter_class = ADAPTERS.get(family)
    if adapter_class is None:
        hint = closest(family, list(ADAPTERS))
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        raise ModelError(
            f"unknown model family {family!r} (known: {', '.join(ADAPTERS)}){suggestion}"
        )
    return adapter_class(session_inputs, session_outputs, input_size=input_size)
