"""Class-wise non-maximum suppression over boxes in any one coordinate system."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from vigil.inference.adapters.base import Tensor

# More candidates than this (a very low min_score) are cut to the best-scoring ones first: NMS
# is quadratic in the worst case, and no scene has thousands of real objects.
MAX_CANDIDATES = 3000


def nms(corners: Tensor, scores: Tensor, class_ids: Tensor, iou: float) -> npt.NDArray[np.intp]:
    """Indices of the boxes kept: within each class, a box overlapping a higher-scoring one by
    more than `iou` is dropped. `corners` are rows of x1, y1, x2, y2.

    OpenCV's `NMSBoxesBatched` (C++, well kept, releases the GIL) rather than a numpy loop: it
    is faster on crowded frames and one less piece of numeric code of our own."""
    count = len(scores)
    if count == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.arange(count)
    if count > MAX_CANDIDATES:
        order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    boxes = np.asarray(corners, dtype=np.float64)[order]
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(),
        np.asarray(scores, dtype=np.float64)[order].tolist(),
        np.asarray(class_ids, dtype=np.int64)[order].tolist(),
        score_threshold=-1.0,  # callers have applied their own floor
        nms_threshold=float(iou),
    )
    return np.asarray(order[np.asarray(kept, dtype=np.intp).reshape(-1)], dtype=np.intp)
