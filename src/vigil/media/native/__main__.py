"""``python -m vigil.media.native [--quiet] [--force]``: build the native GStreamer plugin."""

from __future__ import annotations

import argparse
import logging
import sys

from vigil.media.native import NativeBuildError, build


def main(argv: list[str] | None = None) -> int:
    """Build the plugin; 0 on success, 1 with the reason on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m vigil.media.native",
        description="Build Vigil's native GStreamer plugin (vigilrtpstamp, vigilinterleave).",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        build(force=args.force, quiet=args.quiet)
    except NativeBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
