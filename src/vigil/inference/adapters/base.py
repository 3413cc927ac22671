"""What every model-family adapter shares: the model's tensor descriptions, how an image was
placed in the model's input (and how to undo it), and the adapter contract itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from vigil.inference.types import Box, Detection, Image

Tensor = npt.NDArray[Any]
Dim = int | str | None

# ONNX element types an adapter may feed, as onnxruntime names them.
INPUT_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
}


class ModelError(Exception):
    """A model that cannot be used as configured: missing, unreadable, of another family than
    declared, or with a class count its labels do not match. The message says what to fix."""


class TensorInfo(Protocol):
    """A model input or output as onnxruntime describes it (`onnxruntime.NodeArg` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[Dim]: ...

    @property
    def type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A plain `TensorInfo`, for tests and for describing what a family expects."""

    name: str
    shape: tuple[Dim, ...]
    type: str = "tensor(float)"


def fixed(dim: Dim) -> int | None:
    """The dimension's size when the model fixes it, else None (symbolic or unknown)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def describe(tensors: Sequence[TensorInfo]) -> str:
    """`name [1, 3, 416, 416] float, ...`: how error messages show what a model has."""
    parts = []
    for tensor in tensors:
        dims = ", ".join(str(d) if fixed(d) else (str(d) if d else "?") for d in tensor.shape)
        element = tensor.type.removeprefix("tensor(").removesuffix(")")
        parts.append(f"{tensor.name} [{dims}] {element}")
    return "; ".join(parts) or "none"


def mismatch(family: str, expected: str, what: str, tensors: Sequence[TensorInfo]) -> ModelError:
    """The error for a model whose inputs or outputs do not fit its declared family."""
    return ModelError(
        f"the model does not fit family {family!r}: expected {expected}; "
        f"the model's {what}: {describe(tensors)}"
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an original image ended up in the model's input: input = original * scale + pad.

    Undoing it turns boxes in input pixels into boxes normalised to the original image."""

    image_width: int
    image_height: int
    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_original(self, corners: Tensor) -> Tensor:
        """Rows of x1, y1, x2, y2 in input pixels -> normalised to the original image,
        unclipped."""
        out = np.asarray(corners, dtype=np.float64).copy()
        out[:, 0::2] = (out[:, 0::2] - self.pad_x) / (self.scale_x * self.image_width)
        out[:, 1::2] = (out[:, 1::2] - self.pad_y) / (self.scale_y * self.image_height)
        return out


def check_image(image: Image) -> None:
    """ValueError unless `image` is an H x W x 3 uint8 array with pixels in it."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(
            f"expected an H x W x 3 uint8 BGR image, got shape {image.shape} {image.dtype}"
        )


def resize(image: Image, width: int, height: int) -> tuple[Image, Placement]:
    """Stretch to width x height (aspect not kept), as NanoDet and SSD models were trained."""
    check_image(image)
    h, w = image.shape[:2]
    resized = image if (w, h) == (width, height) else cv2.resize(image, (width, height))
    return np.asarray(resized, dtype=np.uint8), Placement(w, h, width / w, height / h)


def letterbox(image: Image, width: int, height: int, fill: int = 114) -> tuple[Image, Placement]:
    """Scale to fit width x height keeping the aspect, centred on a grey border (YOLO's way)."""
    check_image(image)
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image if (w, h) == (new_w, new_h) else cv2.resize(image, (new_w, new_h))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    padded = cv2.copyMakeBorder(
        resized,
        top,
        height - new_h - top,
        left,
        width - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(fill, fill, fill),
    )
    placement = Placement(w, h, new_w / w, new_h / h, float(left), float(top))
    return np.asarray(padded, dtype=np.uint8), placement


def label_for(class_id: int, labels: Sequence[str]) -> str:
    """The label of a class index; `class N` for an index the labels do not cover (possible
    only for families whose class count the model does not declare)."""
    return labels[class_id] if 0 <= class_id < len(labels) else f"class {class_id}"


def to_detections(
    corners: Tensor, scores: Tensor, class_ids: Tensor, labels: Sequence[str]
) -> list[Detection]:
    """Detections from normalised x1, y1, x2, y2 rows, highest score first, boxes clipped to
    the frame; boxes with no area left after clipping are dropped."""
    detections = []
    for index in np.argsort(-np.asarray(scores), kind="stable"):
        box = Box.clipped(*(float(v) for v in corners[index]))
        if box.area <= 0:
            continue
        label = label_for(int(class_ids[index]), labels)
        detections.append(Detection(label, float(scores[index]), box))
    return detections


class Adapter(ABC):
    """One model family's pre- and post-processing, fitted to one model's tensors.

    Built from the model's input and output descriptions (raising `ModelError` when they do not
    fit the family); then pure: `preprocess` and `decode` touch no session and hold no state,
    so one adapter serves concurrent callers."""

    family: ClassVar[str]
    default_size: ClassVar[int]
    nms_iou: ClassVar[float] = 0.5

    input_name: str
    input_width: int
    input_height: int
    batch_size: int | None  # fixed batch dimension of the model's input, None when symbolic
    num_classes: int | None  # None when the model's outputs do not declare it

    _dtype: type[np.generic]  # the input's element type

    def _bind_input(
        self, inputs: Sequence[TensorInfo], *, layout: str, input_size: int | None
    ) -> None:
        """Take the model's one image input (`image_input`) as this adapter's: its name, size
        (`input_size` or the family's default where symbolic), batch dimension and type."""
        image = image_input(
            self.family, inputs, layout=layout, default_size=input_size or self.default_size
        )
        self.input_name, self.batch_size, self._dtype = image.name, image.batch_size, image.dtype
        self.input_width, self.input_height = image.width, image.height

    @abstractmethod
    def preprocess(self, image: Image) -> tuple[Tensor, Placement]:
        """The model's input for one BGR image (with a batch dimension of 1), and how the
        image was placed in it."""

    @abstractmethod
    def decode(
        self,
        outputs: Mapping[str, Tensor],
        placement: Placement,
        labels: Sequence[str],
        min_score: float,
    ) -> list[Detection]:
        """The model's outputs for one image (batch dimension of 1, by output name) as
        detections normalised to the original image, scores >= min_score, highest first."""


@dataclass(frozen=True, slots=True)
class ImageInput:
    """The model's one image input: its name, size, batch dimension and element type."""

    name: str
    width: int
    height: int
    batch_size: int | None
    dtype: type[np.generic]


def image_input(
    family: str, inputs: Sequence[TensorInfo], *, layout: str, default_size: int
) -> ImageInput:
    """The model's single image input, NCHW or NHWC with 3 channels; a symbolic height or width
    takes `default_size`. `ModelError` when the model's inputs are anything else."""
    expected = (
        f"one image input [batch, 3, height, width] ({layout})"
        if layout == "NCHW"
        else f"one image input [batch, height, width, 3] ({layout})"
    )
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type not in INPUT_DTYPES:
        raise mismatch(family, expected, "inputs", inputs)
    tensor = inputs[0]
    if layout == "NCHW":
        batch, channels, height, width = tensor.shape
    else:
        batch, height, width, channels = tensor.shape
    if fixed(channels) not in (3, None):
        raise mismatch(family, expected, "inputs", inputs)
    return ImageInput(
        name=tensor.name,
        width=fixed(width) or default_size,
        height=fixed(height) or default_size,
        batch_size=fixed(batch),
        dtype=INPUT_DTYPES[tensor.type],
    )
