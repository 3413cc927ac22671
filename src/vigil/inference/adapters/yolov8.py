"""YOLOv8-style models (Ultralytics v8 and later): one output [1, 4 + C, N], no objectness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from vigil.inference.adapters.base import (
    Adapter,
    Placement,
    Tensor,
    TensorInfo,
    fixed,
    letterbox,
    mismatch,
    to_detections,
)
from vigil.inference.adapters.nms import nms
from vigil.inference.types import Detection, Image

# A plain number would be Scalar(1/255, 0, 0, 0): zeroing green and blue.
_BLOB_PARAMS = cv2.dnn.Image2BlobParams(
    scalefactor=(1 / 255, 1 / 255, 1 / 255), swapRB=True, ddepth=cv2.CV_32F
)


def yolo_preprocess(
    image: Image, width: int, height: int, dtype: type[np.generic]
) -> tuple[Tensor, Placement]:
    """Letterbox to width x height, RGB, 0..1, NCHW: what Ultralytics' exports expect."""
    boxed, placement = letterbox(image, width, height)
    # OpenCV's blob maker swaps to RGB, scales and goes NCHW in one pass (faster than numpy).
    tensor = cv2.dnn.blobFromImageWithParams(boxed, _BLOB_PARAMS)
    return np.ascontiguousarray(tensor, dtype=dtype), placement


def centre_to_corners(boxes: Tensor) -> Tensor:
    """Rows of cx, cy, w, h -> rows of x1, y1, x2, y2."""
    half = boxes[:, 2:4] / 2
    return np.column_stack([boxes[:, :2] - half, boxes[:, :2] + half])


def single_rank3_output(family: str, expected: str, outputs: Sequence[TensorInfo]) -> TensorInfo:
    """The model's one three-dimensional output (segmentation models add others)."""
    candidates = [output for output in outputs if len(output.shape) == 3]
    if len(candidates) != 1:
        raise mismatch(family, expected, "outputs", outputs)
    return candidates[0]


class YoloV8Adapter(Adapter):
    """Letterboxed RGB 0..1 NCHW in; [1, 4 + C, N] out: cx, cy, w, h in input pixels, then C
    class scores (already sigmoid, no objectness)."""

    family = "yolov8"
    default_size = 640

    def __init__(
        self,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        *,
        input_size: int | None = None,
    ) -> None:
        self._bind_input(inputs, layout="NCHW", input_size=input_size)
        expected = "one output [1, 4 + C, N] (box rows in columns: cx, cy, w, h, C class scores)"
        output = single_rank3_output(self.family, expected, outputs)
        rows, boxes = fixed(output.shape[1]), fixed(output.shape[2])
        if rows is not None and (rows < 5 or (boxes is not None and rows > boxes)):
            # [1, 8400, 84] is the transposed (YOLOv5-style) layout: say so.
            raise mismatch(
                self.family,
                expected + ", with 4 + C < N; [1, N, 5 + C] is yolov5's layout",
                "outputs",
                outputs,
            )
        self._output = output.name
        self.num_classes = rows - 4 if rows is not None else None

    def preprocess(self, image: Image) -> tuple[Tensor, Placement]:
        return yolo_preprocess(image, self.input_width, self.input_height, self._dtype)

    def decode(
        self,
        outputs: Mapping[str, Tensor],
        placement: Placement,
        labels: Sequence[str],
        min_score: float,
    ) -> list[Detection]:
        rows = np.asarray(outputs[self._output][0], dtype=np.float32).T  # N x (4 + C)
        class_ids = rows[:, 4:].argmax(axis=1)
        scores = rows[np.arange(len(rows)), 4 + class_ids]
        keep = scores >= min_score
        corners = centre_to_corners(rows[keep, :4])
        scores, class_ids = scores[keep], class_ids[keep]
        kept = nms(corners, scores, class_ids, self.nms_iou)
        normalised = placement.to_original(corners[kept])
        return to_detections(normalised, scores[kept], class_ids[kept], labels)
