"""The configuration ``vigil run`` uses without ``-c``: four simulated cameras, recorded.

It is written as YAML and loaded like any file, so the default is also an example of the format.
"""

from __future__ import annotations

from collections.abc import Mapping

from vigil.config.loader import load_config_text
from vigil.config.root import VigilConfig

DEFAULT_CONFIG_SOURCE_NAME = "<built-in default config>"

DEFAULT_CONFIG_YAML = """\
# Vigil's built-in default: a simulator serving four synthetic RTSP cameras, each recorded.
# Relative paths are relative to the config file's directory (here: the current directory).
data_dir: ./data

recording:
  segment_seconds: 60     # one file per minute, cut on a keyframe
  fragment_seconds: 1.0   # what a power cut can lose at the end of the file being written

log:
  level: info
  format: text

api:
  listen: 127.0.0.1:8080

simulator:
  enabled: true
  cameras: 4              # served as rtsp://127.0.0.1:8654/cam1 .. cam4
  port: 8654
  codec: h264
  width: 1280
  height: 720
  fps: 25
  bitrate_kbit: 2000

streams:
  - name: cam1
    source: rtsp://127.0.0.1:8654/cam1
    record: true
    detect:               # object detection once a second (on keyframes): `vigil models install`
      enabled: true
      fps: 1
  - name: cam2
    source: rtsp://127.0.0.1:8654/cam2
    record: true
  - name: cam3
    source: rtsp://127.0.0.1:8654/cam3
    record: true
  - name: cam4
    source: rtsp://127.0.0.1:8654/cam4
    record: true
"""


def default_config(*, env: Mapping[str, str] | None = None) -> VigilConfig:
    """The built-in default configuration, with ``VIGIL_*`` overrides from `env` applied.

    `env` None means ``os.environ``, as for a file, so ``VIGIL_LOG__LEVEL=debug vigil run``
    works without ``-c``; pass ``env={}`` for the pristine default. Resolve it against the
    current directory.
    """
    return load_config_text(DEFAULT_CONFIG_YAML, source_name=DEFAULT_CONFIG_SOURCE_NAME, env=env)
