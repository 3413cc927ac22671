"""Object detection: the global ``detection`` section (models, backends, batching, tracker,
events) and each stream's ``detect`` entry (whether, how often, what and where to look)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator

from vigil.config.base import BaseConfig, located_error

# The model every stream uses unless told otherwise; `vigil models install` provides it.
DEFAULT_MODEL = "nanodet"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ModelFamily(StrEnum):
    """How a model's tensors are laid out (which adapter reads them)."""

    NANODET = "nanodet"
    YOLOV8 = "yolov8"
    YOLOV5 = "yolov5"
    SSD = "ssd"


class DecodeMode(StrEnum):
    """Which frames the detection branch decodes."""

    AUTO = "auto"  # keyframes only when the camera sends them at least as often as `fps`
    KEYFRAMES = "keyframes"
    ALL = "all"


class DecoderChoice(StrEnum):
    """Which decoder the detection branch uses."""

    AUTO = "auto"  # NVIDIA (nvh264dec/nvh265dec) when the plugin registers, else software
    SOFTWARE = "software"
    NVIDIA = "nvidia"


class ZoneMode(StrEnum):
    INCLUDE = "include"
    EXCLUDE = "exclude"


class ModelConfig(BaseConfig):
    """A detection model of your own: an ONNX file, its family and its labels."""

    path: Path = Field(description="The .onnx file. Relative paths are relative to the config.")
    family: ModelFamily = Field(
        description="How its outputs are laid out: nanodet, yolov8 (`[1, 4+C, N]`), yolov5 "
        "(`[1, N, 5+C]`) or ssd (TF Object Detection API style)."
    )
    labels: str = Field(
        description="A labels file (one label per line, in class order) or the name of a "
        "built-in label set (`coco-80`)."
    )


class ZoneConfig(BaseConfig):
    """A polygon over the picture, in normalised coordinates (0..1 of width and height)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$", description="Zone name.")
    polygon: list[tuple[float, float]] = Field(
        min_length=3,
        max_length=100,
        description="Corners `[x, y]`, each 0..1 (0,0 = top left); at least three.",
    )
    mode: ZoneMode = Field(
        default=ZoneMode.INCLUDE,
        description="include: only objects standing in an include zone count (when any is "
        "set); exclude: objects standing here never count.",
    )

    @field_validator("polygon")
    @classmethod
    def _inside_frame(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"zone corner [{x}, {y}] is outside the picture: coordinates are 0..1"
                )
        return points


class MotionConfig(BaseConfig):
    """The motion gate: a still scene with nothing tracked is not sent to the detector."""

    enabled: bool = Field(default=True, description="Skip detection on still scenes.")
    threshold: int = Field(
        default=25, ge=1, le=255, description="Grey-level change that counts as motion."
    )
    min_area: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="Fraction of the (downscaled) picture that must change to count as motion.",
    )
    keepalive_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Run the detector at least this often even on a still scene (0: never), "
        "so an object that arrived without visible motion is still found.",
    )


class StreamDetectConfig(BaseConfig):
    """Detection for one stream."""

    enabled: bool = Field(default=False, description="Run object detection on this stream.")
    model: str = Field(
        default=DEFAULT_MODEL,
        pattern=MODEL_NAME_PATTERN,
        description="`nanodet` (built in, installed by `vigil models install`) or a name from "
        "`detection.models`.",
    )
    fps: float = Field(
        default=5.0, gt=0, le=30, description="Frames per second to look at (at most)."
    )
    labels: list[str] = Field(
        default_factory=lambda: ["person"],
        max_length=1000,
        description="Labels to track; empty: every label of the model.",
    )
    min_score: float = Field(
        default=0.5, ge=0, le=1, description="Detections less confident than this are ignored."
    )
    min_area: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Boxes smaller than this fraction of the picture are ignored.",
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list, max_length=100, description="Zones; see `ZoneConfig`."
    )
    decode: DecodeMode = Field(
        default=DecodeMode.AUTO,
        description="keyframes: decode only keyframes (cheapest; the rate is the camera's "
        "keyframe rate); all: decode every frame and sample `fps`; auto: keyframes when the "
        "camera sends them at least `fps` times a second.",
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="The motion gate.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        seen: set[str] = set()
        for label in labels:
            if not label.strip():
                raise ValueError("a label must not be empty")
            if label in seen:
                raise ValueError(f"label '{label}' is listed twice")
            seen.add(label)
        return labels

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        names = [zone.name for zone in zones]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"zone name '{name}' is used twice")
        return zones


class TrackerConfig(BaseConfig):
    """How detections in successive frames become one tracked object."""

    iou_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Boxes overlapping at least this much match."
    )
    max_distance: float = Field(
        default=0.15,
        gt=0,
        le=1,
        description="Otherwise, centres this close (fraction of the picture, per second "
        "since last seen) match.",
    )
    max_age_s: float = Field(
        default=3.0, gt=0, le=600, description="An object not seen this long has left."
    )
    min_hits: int = Field(
        default=2, ge=1, le=100, description="Sightings before an object counts (entered)."
    )


class DetectionConfig(BaseConfig):
    """Models, backends and the scheduler shared by every stream's detection."""

    models_dir: Path | None = Field(
        default=None,
        description="Where installed models live (`vigil models install`). Unset: "
        "`<data_dir>/models`. Relative paths are relative to the config file.",
    )
    models: dict[str, ModelConfig] = Field(
        default_factory=dict, description="Models of your own, by name (for `detect.model`)."
    )
    providers: list[str] = Field(
        default_factory=lambda: ["auto"],
        min_length=1,
        description="ONNX Runtime execution providers in order of preference: auto "
        "(TensorRT, then CUDA, then CPU, by what the installed onnxruntime offers), or any of "
        "tensorrt, cuda, cpu. A missing one is warned about and skipped; CPU is always last.",
    )
    decoder: DecoderChoice = Field(
        default=DecoderChoice.AUTO,
        description="Decoder of the detection branch: auto (NVIDIA when nvcodec registers "
        "nvh264dec/nvh265dec, else software), software, or nvidia (warned and software when "
        "missing).",
    )
    frame_width: int = Field(
        default=640,
        ge=160,
        le=3840,
        description="Frames are scaled to this width (aspect kept) before detection; "
        "snapshots have this size.",
    )
    max_batch: int = Field(
        default=8,
        ge=1,
        le=64,
        description="At most this many frames (of different streams) per inference run.",
    )
    batch_timeout_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="How long a batch waits for more frames after its first.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Inference runs at the same time.")
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Threads per inference run (ONNX Runtime intra-op); 0: ONNX Runtime "
        "chooses (one per core).",
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracking.")
    snapshot_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality.")
    clip_pre_s: float = Field(
        default=5.0, ge=0, le=300, description="Seconds of recording before an object's clip."
    )
    clip_post_s: float = Field(
        default=5.0, ge=0, le=300, description="Seconds of recording after an object's clip."
    )
    keep_recordings_days: float = Field(
        default=0.0,
        ge=0,
        le=36500,
        description="Keep the recording around each detected object (its clip) at least this "
        "many days, even when the stream's retention would delete it sooner; 0: off.",
    )

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        import re

        for name in models:
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                raise ValueError(f"invalid model name '{name[:70]}'")
        return models

    @field_validator("providers")
    @classmethod
    def _providers(cls, providers: list[str]) -> list[str]:
        known = ("auto", "tensorrt", "cuda", "cpu")
        for provider in providers:
            if provider not in known:
                raise ValueError(
                    f"unknown execution provider '{provider[:40]}'; known: {', '.join(known)}"
                )
        return providers

    @model_validator(mode="after")
    def _no_builtin_shadowing(self) -> Self:
        if DEFAULT_MODEL in self.models:
            raise located_error(
                ("models", DEFAULT_MODEL),
                "builtin_model_name",
                "'{name}' is the built-in model; give yours another name",
                name=DEFAULT_MODEL,
            )
        return self
