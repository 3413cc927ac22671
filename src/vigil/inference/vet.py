"""Open an ONNX file in a throwaway process before Vigil opens it itself.

A model file of the user's that is damaged can do worse than fail to parse: with the libraries a
running Vigil has loaded (GStreamer's among them), ONNX Runtime 1.32 was seen to abort the whole
process on a file of garbage bytes, where a bare Python process got a clean `InvalidProtobuf`.
An NVR must not lose its recordings to a bad model file, so a model that is not the pinned
default is first opened by a child process (about half a second, once per model and start):
a crash there is a clear error here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

VET_TIMEOUT_S = 120.0

_PROGRAM = """
import sys
import onnxruntime as ort
try:
    ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
except Exception as error:
    text = str(error).strip() or type(error).__name__
    print(text.splitlines()[-1][:300], file=sys.stderr)
    raise SystemExit(3)
"""


def vet_model(path: Path) -> str | None:
    """None if ONNX Runtime opens `path` in a child process; else why not, in words."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROGRAM, str(path)],
            capture_output=True, text=True, timeout=VET_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"ONNX Runtime did not open it within {VET_TIMEOUT_S:g} s"
    except OSError as error:
        return f"could not start a process to check it: {error}"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"ONNX Runtime crashed opening it ({name}): the file is damaged or not a model"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"ONNX Runtime could not open it (exit {done.returncode})"
