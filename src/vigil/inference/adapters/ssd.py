"""SSD-style models in the TensorFlow Object Detection API's shape: boxes as y1, x1, y2, x2
normalised to the input, either already suppressed (classes, scores, num_detections) or with
per-class scores still to suppress."""

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
    mismatch,
    resize,
    to_detections,
)
from vigil.inference.adapters.nms import nms
from vigil.inference.types import Detection, Image

EXPECTED = (
    "boxes [1, N, 4] (y1, x1, y2, x2, normalised) with either classes [1, N] + scores [1, N] "
    "(+ optional num_detections [1]) or scores [1, N, C]"
)


def _named(candidates: list[TensorInfo], word: str) -> TensorInfo | None:
    matches = [c for c in candidates if word in c.name.lower()]
    return matches[0] if len(matches) == 1 else None


class SsdAdapter(Adapter):
    """Resize (aspect not kept), RGB, NHWC in: uint8 0..255 for a uint8 input, float with the
    same 0..255 values for a float input (TF OD API exports normalise inside the graph).

    Out, told apart by TF's names (`detection_boxes` ...) when present, else by rank and then by
    name: `detection_boxes` [1, N, 4], `detection_classes`
    [1, N], `detection_scores` [1, N], `num_detections` [1] (the TF order boxes, classes, scores
    when the names do not say), or boxes [1, N, 4] + scores [1, N, C] suppressed here. Class
    indices index the labels as they are: TF OD API models count from 1, so their labels file
    starts with a placeholder line for class 0."""

    family = "ssd"
    default_size = 300

    def __init__(
        self,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        *,
        input_size: int | None = None,
    ) -> None:
        self._bind_input(inputs, layout="NHWC", input_size=input_size)
        self._classes: str | None = None
        self._scores: str
        self._count: str | None = None
        self.num_classes: int | None = None
        if not self._by_tf_names(outputs) and not self._by_shapes(outputs):
            raise mismatch(self.family, EXPECTED, "outputs", outputs)

    def _by_tf_names(self, outputs: Sequence[TensorInfo]) -> bool:
        """TF2 exports add raw and multi-class outputs of the same ranks; their names tell."""
        by_name = {output.name.lower().removesuffix(":0"): output for output in outputs}
        found = [by_name.get(f"detection_{what}") for what in ("boxes", "classes", "scores")]
        boxes, classes, scores = found
        if boxes is None or classes is None or scores is None:
            return False
        if [len(boxes.shape), len(classes.shape), len(scores.shape)] != [3, 2, 2]:
            return False
        self._boxes, self._classes, self._scores = boxes.name, classes.name, scores.name
        count = by_name.get("num_detections")
        self._count = count.name if count is not None else None
        return True

    def _by_shapes(self, outputs: Sequence[TensorInfo]) -> bool:
        by_rank: dict[int, list[TensorInfo]] = {1: [], 2: [], 3: []}
        for output in outputs:
            by_rank.setdefault(len(output.shape), []).append(output)
        boxes_like = [o for o in by_rank[3] if fixed(o.shape[2]) == 4]
        boxes = boxes_like[0] if len(boxes_like) == 1 else _named(boxes_like, "box")
        if boxes is None:
            return False
        self._boxes = boxes.name
        others = [o for o in by_rank[3] if o is not boxes]
        if len(by_rank[2]) == 2 and not others:
            pair = by_rank[2]
            classes, scores = _named(pair, "class"), _named(pair, "score")
            if classes is None or scores is None or classes is scores:
                classes, scores = pair  # TF's own order: boxes, classes, scores, num
            self._classes, self._scores = classes.name, scores.name
            if len(by_rank[1]) == 1:
                self._count = by_rank[1][0].name
            return True  # num_classes stays None: the ids' range is not in the shapes
        if len(others) == 1 and not by_rank[2]:
            self._scores = others[0].name
            self.num_classes = fixed(others[0].shape[2])
            return True
        return False

    def preprocess(self, image: Image) -> tuple[Tensor, Placement]:
        resized, placement = resize(image, self.input_width, self.input_height)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(rgb[np.newaxis].astype(self._dtype)), placement

    def decode(
        self,
        outputs: Mapping[str, Tensor],
        placement: Placement,
        labels: Sequence[str],
        min_score: float,
    ) -> list[Detection]:
        boxes = np.asarray(outputs[self._boxes][0], dtype=np.float64)
        # y1, x1, y2, x2 normalised to the input; a plain resize keeps them normalised to the
        # original too, so no placement to undo.
        corners = boxes[:, [1, 0, 3, 2]]
        if self._classes is not None:
            scores = np.asarray(outputs[self._scores][0], dtype=np.float32)
            class_ids = np.rint(np.asarray(outputs[self._classes][0])).astype(np.int64)
            if self._count is not None:
                count = int(np.asarray(outputs[self._count]).reshape(-1)[0])
                corners, scores, class_ids = corners[:count], scores[:count], class_ids[:count]
            keep = scores >= min_score
            return to_detections(corners[keep], scores[keep], class_ids[keep], labels)
        class_scores = np.asarray(outputs[self._scores][0], dtype=np.float32)
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_ids)), class_ids]
        keep = scores >= min_score
        corners, scores, class_ids = corners[keep], scores[keep], class_ids[keep]
        kept = nms(corners, scores, class_ids, self.nms_iou)
        return to_detections(corners[kept], scores[kept], class_ids[kept], labels)
