"""NanoDet: three strides of per-cell class scores and distance distributions (GFL heads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vigil.inference.adapters.base import (
    Adapter,
    Placement,
    Tensor,
    TensorInfo,
    fixed,
    mismatch,
    resize,
    to_detections,
)
from vigil.inference.adapters.nms import nms
from vigil.inference.types import Detection, Image

BINS = 11  # distribution bins per box side (reg_max 10)
STRIDES = (8, 16, 32, 64, 128)
# The preprocessing that scored best on the default model (BGR kept, ImageNet statistics).
MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
_BLOB_PARAMS = cv2.dnn.Image2BlobParams(
    scalefactor=tuple(float(1 / s) for s in STD),
    mean=tuple(float(m) for m in MEAN),
    swapRB=False,
    ddepth=cv2.CV_32F,
)


@dataclass(frozen=True, slots=True)
class Level:
    """One stride's pair of outputs and its grid."""

    scores: str
    distances: str
    stride: int
    grid_width: int


def _stride_for(cells: int, width: int, height: int) -> int | None:
    for stride in STRIDES:
        if -(-width // stride) * -(-height // stride) == cells:
            return stride
    return None


class NanoDetAdapter(Adapter):
    """Resize (aspect not kept), BGR, mean/std, NCHW in; per stride scores [1, N, C] (already
    sigmoid) and distributions [1, N, 4 x 11] out, paired by N rather than by name (converted
    models name them `Identity_3:0`)."""

    family = "nanodet"
    default_size = 416

    def __init__(
        self,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        *,
        input_size: int | None = None,
    ) -> None:
        self._bind_input(inputs, layout="NCHW", input_size=input_size)
        expected = (
            "per stride two outputs with the same cell count N: class scores [1, N, C] and "
            f"box distributions [1, N, {4 * BINS}], N fixed and matching a stride of "
            f"{'/'.join(map(str, STRIDES))} at the {self.input_width}x{self.input_height} input"
        )
        scores: dict[int, TensorInfo] = {}
        distances: dict[int, TensorInfo] = {}
        for output in outputs:
            cells = fixed(output.shape[1]) if len(output.shape) == 3 else None
            last = fixed(output.shape[-1]) if len(output.shape) == 3 else None
            if cells is None or last is None:
                raise mismatch(self.family, expected, "outputs", outputs)
            # A model with exactly 44 classes would be ambiguous here; no such NanoDet exists.
            side = distances if last == 4 * BINS else scores
            if cells in side:
                raise mismatch(self.family, expected, "outputs", outputs)
            side[cells] = output
        class_counts = {fixed(info.shape[-1]) for info in scores.values()}
        if not scores or scores.keys() != distances.keys() or len(class_counts) != 1:
            raise mismatch(self.family, expected, "outputs", outputs)
        self.num_classes = class_counts.pop()
        levels = []
        for cells in sorted(scores, reverse=True):
            stride = _stride_for(cells, self.input_width, self.input_height)
            if stride is None:
                raise mismatch(self.family, expected, "outputs", outputs)
            grid_width = -(-self.input_width // stride)
            levels.append(Level(scores[cells].name, distances[cells].name, stride, grid_width))
        self._levels = tuple(levels)

    def preprocess(self, image: Image) -> tuple[Tensor, Placement]:
        resized, placement = resize(image, self.input_width, self.input_height)
        # OpenCV's blob maker: (x - mean) * scale and HWC -> NCHW in one pass, 2.5x faster
        # than the same in numpy (5 ms -> 2 ms for 416x416 on this machine).
        tensor = cv2.dnn.blobFromImageWithParams(resized, _BLOB_PARAMS)
        return np.ascontiguousarray(tensor, dtype=self._dtype), placement

    def decode(
        self,
        outputs: Mapping[str, Tensor],
        placement: Placement,
        labels: Sequence[str],
        min_score: float,
    ) -> list[Detection]:
        all_corners, all_scores, all_classes = [], [], []
        for level in self._levels:
            class_scores = np.asarray(outputs[level.scores][0], dtype=np.float32)
            class_ids = class_scores.argmax(axis=1)
            best = class_scores[np.arange(len(class_ids)), class_ids]
            cells = np.flatnonzero(best >= min_score)
            if cells.size == 0:
                continue
            logits = np.asarray(outputs[level.distances][0], dtype=np.float32)[cells]
            logits = logits.reshape(-1, 4, BINS)
            weights = np.exp(logits - logits.max(axis=2, keepdims=True))
            weights /= weights.sum(axis=2, keepdims=True)
            # left, top, right, bottom: expected bin x stride, from the cell's top-left corner
            sides = (weights @ np.arange(BINS, dtype=np.float32)) * level.stride
            x = (cells % level.grid_width) * level.stride
            y = (cells // level.grid_width) * level.stride
            all_corners.append(
                np.column_stack(
                    [x - sides[:, 0], y - sides[:, 1], x + sides[:, 2], y + sides[:, 3]]
                )
            )
            all_scores.append(best[cells])
            all_classes.append(class_ids[cells])
        if not all_scores:
            return []
        corners = np.concatenate(all_corners)
        scores, class_ids = np.concatenate(all_scores), np.concatenate(all_classes)
        kept = nms(corners, scores, class_ids, self.nms_iou)
        normalised = placement.to_original(corners[kept])
        return to_detections(normalised, scores[kept], class_ids[kept], labels)
