"""YOLOv5-style models: one output [1, N, 5 + C], objectness times class score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.inference.adapters.base import (
    Adapter,
    Placement,
    Tensor,
    TensorInfo,
    fixed,
    mismatch,
    to_detections,
)
from vigil.inference.adapters.nms import nms
from vigil.inference.adapters.yolov8 import centre_to_corners, single_rank3_output, yolo_preprocess
from vigil.inference.types import Detection, Image


class YoloV5Adapter(Adapter):
    """Letterboxed RGB 0..1 NCHW in; [1, N, 5 + C] out: cx, cy, w, h in input pixels,
    objectness, then C class scores; a box's score is objectness x its best class score."""

    family = "yolov5"
    default_size = 640

    def __init__(
        self,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        *,
        input_size: int | None = None,
    ) -> None:
        self._bind_input(inputs, layout="NCHW", input_size=input_size)
        expected = "one output [1, N, 5 + C] (a row per box: cx, cy, w, h, objectness, C scores)"
        output = single_rank3_output(self.family, expected, outputs)
        boxes, columns = fixed(output.shape[1]), fixed(output.shape[2])
        if columns is not None and (columns < 6 or (boxes is not None and columns > boxes)):
            raise mismatch(
                self.family,
                expected + ", with 5 + C < N; [1, 4 + C, N] is yolov8's layout",
                "outputs",
                outputs,
            )
        self._output = output.name
        self.num_classes = columns - 5 if columns is not None else None

    def preprocess(self, image: Image) -> tuple[Tensor, Placement]:
        return yolo_preprocess(image, self.input_width, self.input_height, self._dtype)

    def decode(
        self,
        outputs: Mapping[str, Tensor],
        placement: Placement,
        labels: Sequence[str],
        min_score: float,
    ) -> list[Detection]:
        rows = np.asarray(outputs[self._output][0], dtype=np.float32)  # N x (5 + C)
        rows = rows[rows[:, 4] >= min_score]  # the product cannot beat objectness
        class_scores = rows[:, 5:] * rows[:, 4:5]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(rows)), class_ids]
        keep = scores >= min_score
        corners = centre_to_corners(rows[keep, :4])
        scores, class_ids = scores[keep], class_ids[keep]
        kept = nms(corners, scores, class_ids, self.nms_iou)
        normalised = placement.to_original(corners[kept])
        return to_detections(normalised, scores[kept], class_ids[kept], labels)
