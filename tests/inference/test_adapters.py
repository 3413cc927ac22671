"""Model-family adapters on hand-made tensors: pre-processing, decoding, NMS, letterbox undo,
and the errors for a model that does not fit its declared family."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.inference.adapters import ModelError, TensorSpec, adapter_for
from vigil.inference.adapters.base import Placement, Tensor, letterbox
from vigil.inference.adapters.nanodet import BINS, MEAN, STD, NanoDetAdapter
from vigil.inference.adapters.nms import nms
from vigil.inference.adapters.ssd import SsdAdapter
from vigil.inference.adapters.yolov5 import YoloV5Adapter
from vigil.inference.adapters.yolov8 import YoloV8Adapter
from vigil.inference.types import Box

LABELS = ["person", "car", "dog"]
UINT8 = "tensor(uint8)"


def image(width: int, height: int, bgr: tuple[int, int, int] = (0, 0, 0)) -> Tensor:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:] = bgr
    return frame


def approx_box(box: Box, expected: tuple[float, float, float, float]) -> None:
    assert box.as_tuple() == pytest.approx(expected, abs=1e-4)


# --- NMS -----------------------------------------------------------------------------------


def test_nms_is_class_wise() -> None:
    corners = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    kept = nms(corners, scores, np.array([0, 0, 1, 0]), 0.5)
    assert sorted(kept.tolist()) == [1, 2, 3]


def test_nms_of_nothing() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


# --- NanoDet -------------------------------------------------------------------------------

# A 64x64 input: strides 8, 16, 32 give grids of 8x8, 4x4 and 2x2 cells.
NANODET_INPUT = [TensorSpec("input_1:0", (1, 3, 64, 64))]
NANODET_OUTPUTS = [  # deliberately shuffled, with names that say nothing
    TensorSpec("Identity_4:0", (1, 16, 4 * BINS)),
    TensorSpec("Identity:0", (1, 64, 3)),
    TensorSpec("Identity_5:0", (1, 4, 4 * BINS)),
    TensorSpec("Identity_2:0", (1, 4, 3)),
    TensorSpec("Identity_3:0", (1, 64, 4 * BINS)),
    TensorSpec("Identity_1:0", (1, 16, 3)),
]


def nanodet_outputs() -> dict[str, Tensor]:
    """Every score 0, every distribution flat at -50 (a bin set to 50 then takes it all)."""
    outputs = {}
    for spec in NANODET_OUTPUTS:
        shape = tuple(int(dim) for dim in spec.shape if isinstance(dim, int))
        outputs[spec.name] = np.full(shape, -50.0 if shape[2] == 4 * BINS else 0.0, np.float32)
    return outputs


def put_nanodet_box(
    outputs: dict[str, Tensor],
    scores: str,
    distances: str,
    cell: int,
    class_id: int,
    score: float,
    bins: tuple[int, int, int, int],
) -> None:
    outputs[scores][0, cell, class_id] = score
    for side, bin_index in enumerate(bins):  # left, top, right, bottom
        outputs[distances][0, cell, side * BINS + bin_index] = 50.0


def test_nanodet_decodes_distances_from_the_cells_top_left_corner() -> None:
    adapter = NanoDetAdapter(NANODET_INPUT, NANODET_OUTPUTS)
    outputs = nanodet_outputs()
    # stride 8, cell at column 3, row 2 -> corner (24, 16); sides 2, 1, 3, 4 bins of 8 px
    put_nanodet_box(outputs, "Identity:0", "Identity_3:0", 2 * 8 + 3, 1, 0.9, (2, 1, 3, 4))
    # the same object seen from the next cell, a little lower score: suppressed by NMS
    put_nanodet_box(outputs, "Identity:0", "Identity_3:0", 2 * 8 + 4, 1, 0.8, (3, 1, 2, 4))
    # the same box from another cell, but another class: kept (NMS is class-wise)
    put_nanodet_box(outputs, "Identity:0", "Identity_3:0", 3 * 8 + 3, 2, 0.7, (2, 2, 3, 3))
    # below the floor: dropped
    put_nanodet_box(outputs, "Identity_1:0", "Identity_4:0", 0, 0, 0.3, (1, 1, 1, 1))
    # stride 32, cell at column 1, row 1 -> corner (32, 32); sides 0.5 bin (two equal bins)
    outputs["Identity_2:0"][0, 3, 0] = 0.6
    outputs["Identity_5:0"][0, 3, :] = -50.0
    for side in range(4):
        outputs["Identity_5:0"][0, 3, side * BINS : side * BINS + 2] = 50.0
    # the original image was 128 x 64, stretched to the 64 x 64 input
    placement = Placement(128, 64, 0.5, 1.0)
    detections = adapter.decode(outputs, placement, LABELS, 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [
        ("car", 0.9),
        ("dog", 0.7),
        ("person", 0.6),
    ]
    approx_box(detections[0].box, (8 / 64, 8 / 64, 48 / 64, 48 / 64))
    approx_box(detections[1].box, (8 / 64, 8 / 64, 48 / 64, 48 / 64))
    approx_box(detections[2].box, (16 / 64, 16 / 64, 48 / 64, 48 / 64))


def test_nanodet_nothing_above_the_floor() -> None:
    adapter = NanoDetAdapter(NANODET_INPUT, NANODET_OUTPUTS)
    assert adapter.decode(nanodet_outputs(), Placement(64, 64, 1, 1), LABELS, 0.35) == []


def test_nanodet_preprocess_resizes_keeps_bgr_and_normalises() -> None:
    adapter = NanoDetAdapter(NANODET_INPUT, NANODET_OUTPUTS)
    assert (adapter.input_width, adapter.input_height, adapter.num_classes) == (64, 64, 3)
    assert adapter.batch_size == 1
    tensor, placement = adapter.preprocess(image(128, 32, bgr=(10, 20, 30)))
    assert tensor.shape == (1, 3, 64, 64)
    assert tensor.dtype == np.float32
    expected = (np.array([10, 20, 30], dtype=np.float32) - MEAN) / STD
    assert tensor[0, :, 5, 5] == pytest.approx(expected, abs=1e-5)
    assert placement == Placement(128, 32, 0.5, 2.0)


def test_nanodet_pairs_outputs_by_cell_count() -> None:
    unpaired = [*NANODET_OUTPUTS[:-1], TensorSpec("extra", (1, 9, 3))]
    with pytest.raises(ModelError, match=r"family 'nanodet'.*extra \[1, 9, 3\]"):
        NanoDetAdapter(NANODET_INPUT, unpaired)


# --- YOLOv8 --------------------------------------------------------------------------------


def padded(rows: Tensor, count: int) -> Tensor:
    """`rows` followed by all-zero rows (boxes scoring 0), as a real model's N is large."""
    return np.vstack([rows, np.zeros((count - len(rows), rows.shape[1]), rows.dtype)])


def yolo_input(size: int | str = 640) -> list[TensorSpec]:
    return [TensorSpec("images", (1, 3, size, size))]


def test_yolov8_decodes_and_undoes_the_letterbox() -> None:
    adapter = YoloV8Adapter(yolo_input(), [TensorSpec("output0", (1, 4 + 3, 100))])
    assert adapter.num_classes == 3
    rows = np.array(
        [
            # cx, cy, w, h, person, car, dog
            [320, 320, 100, 50, 0.9, 0.1, 0.0],
            [322, 321, 100, 50, 0.8, 0.0, 0.0],  # duplicate of the first: suppressed
            [100, 200, 20, 40, 0.0, 0.3, 0.2],  # below the floor: dropped
            [500, 300, 40, 40, 0.0, 0.1, 0.6],
        ],
        dtype=np.float32,
    )
    outputs = {"output0": padded(rows, 100).T[np.newaxis]}
    # a 1280 x 720 frame: scaled by 0.5 to 640 x 360, 140 px of border above and below
    _, placement = adapter.preprocess(image(1280, 720))
    assert placement == Placement(1280, 720, 0.5, 0.5, 0.0, 140.0)
    detections = adapter.decode(outputs, placement, LABELS, 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("person", 0.9), ("dog", 0.6)]
    approx_box(detections[0].box, (540 / 1280, 310 / 720, 740 / 1280, 410 / 720))
    approx_box(detections[1].box, (960 / 1280, 280 / 720, 1040 / 1280, 360 / 720))


def test_yolo_preprocess_is_rgb_0_to_1_on_grey_border() -> None:
    adapter = YoloV8Adapter(yolo_input(), [TensorSpec("output0", (1, 84, 8400))])
    tensor, _ = adapter.preprocess(image(1280, 720, bgr=(255, 0, 51)))
    assert tensor.shape == (1, 3, 640, 640)
    assert tensor.dtype == np.float32
    assert tensor[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # border
    assert tensor[0, :, 320, 320] == pytest.approx([0.2, 0.0, 1.0])  # R, G, B


def test_yolov8_symbolic_input_uses_the_default_or_the_configured_size() -> None:
    outputs = [TensorSpec("output0", (1, 84, "anchors"))]
    dynamic = [TensorSpec("images", ("batch", 3, "height", "width"))]
    adapter = YoloV8Adapter(dynamic, outputs)
    assert (adapter.input_width, adapter.input_height, adapter.batch_size) == (640, 640, None)
    assert adapter_for("yolov8", dynamic, outputs, input_size=320).input_width == 320


def test_yolov8_refuses_the_yolov5_layout() -> None:
    with pytest.raises(ModelError, match=r"family 'yolov8'.*yolov5's layout.*\[1, 8400, 84\]"):
        YoloV8Adapter(yolo_input(), [TensorSpec("output0", (1, 8400, 84))])


def test_letterbox_of_a_tall_image_pads_the_sides() -> None:
    padded, placement = letterbox(image(100, 200), 64, 64)
    assert padded.shape == (64, 64, 3)
    assert placement == Placement(100, 200, 0.32, 0.32, 16.0, 0.0)
    # the input's centre is the original's centre
    assert placement.to_original(np.array([[32.0, 32.0, 32.0, 32.0]]))[0] == pytest.approx(
        [0.5, 0.5, 0.5, 0.5]
    )


# --- YOLOv5 --------------------------------------------------------------------------------


def test_yolov5_multiplies_objectness_and_class_score() -> None:
    adapter = YoloV5Adapter(yolo_input(), [TensorSpec("output", (1, 100, 5 + 3))])
    assert adapter.num_classes == 3
    rows = np.array(
        [
            # cx, cy, w, h, objectness, person, car, dog
            [320, 320, 100, 50, 0.9, 0.5, 0.1, 0.0],  # 0.45 person
            [321, 322, 100, 50, 0.9, 0.4, 0.0, 0.0],  # 0.36 person, duplicate: suppressed
            [100, 100, 20, 20, 0.9, 0.0, 0.3, 0.0],  # 0.27: dropped
            [100, 100, 20, 20, 0.3, 0.0, 1.0, 0.0],  # objectness below the floor: dropped
            [500, 300, 40, 40, 0.8, 0.0, 0.0, 0.9],  # 0.72 dog
        ],
        dtype=np.float32,
    )
    _, placement = adapter.preprocess(image(1280, 720))
    detections = adapter.decode({"output": padded(rows, 100)[np.newaxis]}, placement, LABELS, 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("dog", 0.72), ("person", 0.45)]
    approx_box(detections[1].box, (540 / 1280, 310 / 720, 740 / 1280, 410 / 720))


def test_yolov5_refuses_the_yolov8_layout() -> None:
    with pytest.raises(ModelError, match=r"family 'yolov5'.*yolov8's layout.*\[1, 84, 8400\]"):
        YoloV5Adapter(yolo_input(), [TensorSpec("output0", (1, 84, 8400))])


# --- SSD -----------------------------------------------------------------------------------

TF_OUTPUTS = [
    TensorSpec("detection_boxes", (1, "N", 4)),
    TensorSpec("detection_scores", (1, "N")),
    TensorSpec("detection_classes", (1, "N")),
    TensorSpec("num_detections", (1,)),
]


def test_ssd_tf_object_detection_api_outputs() -> None:
    adapter = SsdAdapter([TensorSpec("image_tensor", (1, None, None, 3), UINT8)], TF_OUTPUTS)
    assert (adapter.input_width, adapter.input_height, adapter.num_classes) == (300, 300, None)
    outputs = {
        "detection_boxes": np.array(
            [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3]]], np.float32
        ),
        "detection_scores": np.array([[0.8, 0.2, 0.9]], np.float32),
        "detection_classes": np.array([[1.0, 2.0, 1.0]], np.float32),
        "num_detections": np.array([2.0], np.float32),  # the third row is padding
    }
    labels = ["???", "person", "car"]  # TF OD API ids count from 1
    detections = adapter.decode(outputs, Placement(640, 480, 300 / 640, 300 / 480), labels, 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("person", 0.8)]
    approx_box(detections[0].box, (0.2, 0.1, 0.6, 0.5))  # y1, x1, y2, x2 -> x1, y1, x2, y2


def test_ssd_tf2_exports_with_raw_outputs_are_read_by_name() -> None:
    outputs = [
        TensorSpec("detection_anchor_indices", (1, 100)),
        TensorSpec("detection_boxes", (1, 100, 4)),
        TensorSpec("detection_classes", (1, 100)),
        TensorSpec("detection_multiclass_scores", (1, 100, 91)),
        TensorSpec("detection_scores", (1, 100)),
        TensorSpec("num_detections", (1,)),
        TensorSpec("raw_detection_boxes", (1, 1917, 4)),
        TensorSpec("raw_detection_scores", (1, 1917, 91)),
    ]
    adapter = SsdAdapter([TensorSpec("input_tensor", (1, None, None, 3), UINT8)], outputs)
    result = {
        spec.name: np.zeros([d if isinstance(d, int) else 1 for d in spec.shape], np.float32)
        for spec in outputs
    }
    result["detection_boxes"][0, 0] = [0.1, 0.2, 0.5, 0.6]
    result["detection_classes"][0, 0] = 1
    result["detection_scores"][0, 0] = 0.7
    result["num_detections"][0] = 1
    detections = adapter.decode(result, Placement(300, 300, 1, 1), ["???", "person"], 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("person", 0.7)]


def test_ssd_uint8_input_is_rgb_nhwc() -> None:
    adapter = SsdAdapter([TensorSpec("image_tensor", (1, 320, 320, 3), UINT8)], TF_OUTPUTS)
    tensor, _ = adapter.preprocess(image(640, 480, bgr=(255, 0, 0)))
    assert tensor.shape == (1, 320, 320, 3)
    assert tensor.dtype == np.uint8
    assert tensor[0, 10, 10].tolist() == [0, 0, 255]


def test_ssd_float_input_keeps_0_to_255() -> None:
    adapter = SsdAdapter([TensorSpec("input", (1, 300, 300, 3))], TF_OUTPUTS)
    tensor, _ = adapter.preprocess(image(640, 480, bgr=(0, 128, 255)))
    assert tensor.dtype == np.float32
    assert tensor[0, 10, 10].tolist() == [255.0, 128.0, 0.0]


def test_ssd_outputs_told_apart_by_order_when_names_do_not_say() -> None:
    outputs = [
        TensorSpec("out0", (1, 10, 4)),
        TensorSpec("out1", (1, 10)),  # classes, as TF orders them
        TensorSpec("out2", (1, 10)),  # scores
    ]
    adapter = SsdAdapter([TensorSpec("in", (1, 300, 300, 3), UINT8)], outputs)
    result = {
        "out0": np.tile(np.array([0.1, 0.1, 0.2, 0.2], np.float32), (1, 10, 1)),
        "out1": np.full((1, 10), 2.0, np.float32),
        "out2": np.array([[0.9] + [0.0] * 9], np.float32),
    }
    detections = adapter.decode(result, Placement(300, 300, 1, 1), LABELS, 0.5)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("dog", 0.9)]


def test_ssd_boxes_and_class_scores_are_suppressed_here() -> None:
    outputs = [TensorSpec("boxes", (1, 3, 4)), TensorSpec("scores", (1, 3, 3))]
    adapter = SsdAdapter([TensorSpec("in", (1, 300, 300, 3), UINT8)], outputs)
    assert adapter.num_classes == 3
    result = {
        "boxes": np.array(
            [[[0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.5, 0.51], [0.6, 0.6, 0.9, 0.9]]], np.float32
        ),
        "scores": np.array([[[0.1, 0.8, 0.0], [0.1, 0.7, 0.0], [0.3, 0.0, 0.1]]], np.float32),
    }
    detections = adapter.decode(result, Placement(300, 300, 1, 1), LABELS, 0.35)
    assert [(d.label, round(d.score, 3)) for d in detections] == [("car", 0.8)]


def test_ssd_refuses_nchw_and_unknown_outputs() -> None:
    with pytest.raises(ModelError, match=r"family 'ssd'.*\[batch, height, width, 3\]"):
        SsdAdapter([TensorSpec("in", (1, 3, 300, 300))], TF_OUTPUTS)
    with pytest.raises(ModelError, match=r"family 'ssd'.*boxes \[1, N, 4\].*out \[1, 100, 85\]"):
        SsdAdapter([TensorSpec("in", (1, 300, 300, 3))], [TensorSpec("out", (1, 100, 85))])


# --- the registry --------------------------------------------------------------------------


def test_adapter_for_picks_by_family() -> None:
    adapter = adapter_for("nanodet", NANODET_INPUT, NANODET_OUTPUTS)
    assert isinstance(adapter, NanoDetAdapter)
    assert adapter.family == "nanodet"


def test_a_model_of_another_family_names_family_expectation_and_outputs() -> None:
    with pytest.raises(ModelError) as caught:
        adapter_for("yolov8", NANODET_INPUT, NANODET_OUTPUTS)
    message = str(caught.value)
    assert "family 'yolov8'" in message
    assert "expected one output [1, 4 + C, N]" in message
    assert "Identity_3:0 [1, 64, 44] float" in message


def test_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown model family 'yolo8'.*nanodet.*'yolov8'\?"):
        adapter_for("yolo8", NANODET_INPUT, NANODET_OUTPUTS)


def test_preprocess_refuses_a_grey_image() -> None:
    adapter = NanoDetAdapter(NANODET_INPUT, NANODET_OUTPUTS)
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        adapter.preprocess(np.zeros((10, 10), dtype=np.uint8))
