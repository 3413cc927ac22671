"""`vigil export`: one MP4 of a stream's recordings in a time range, cut by a running Vigil and
downloaded with a progress bar."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.commands.client import (
    DEFAULT_URL,
    RemoteError,
    TokenOption,
    UrlOption,
    connect,
    stream_path,
)
from vigil.commands.output import escape, stderr
from vigil.commands.times import (
    ACCEPTED,
    check_range,
    option_time,
    show_duration,
    show_size,
    show_time,
)

if TYPE_CHECKING:
    # Imported when the command runs: building the command line must stay cheap (cli.py).
    from http.client import HTTPMessage

    from rich.progress import Progress, TaskID

    from vigil.commands.client import Response

# Vigil writes the whole clip before it answers: allow it the time a long export takes.
EXPORT_READ_TIMEOUT_S = 600.0
CHUNK = 256 * 1024
_FILENAME = re.compile(r'filename="([^"]+)"')


def export(
    name: Annotated[
        str, typer.Argument(help="The stream's name.", metavar="NAME", show_default=False)
    ],
    start: Annotated[
        datetime,
        typer.Option(
            parser=option_time, metavar="TIME", help=f"From: {ACCEPTED}.", show_default=False
        ),
    ],
    end: Annotated[
        datetime,
        typer.Option(
            parser=option_time,
            metavar="TIME",
            help="Until (same forms as --start).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            show_default=False,
            help="The MP4 to write (default: the name Vigil gives it, here).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the output file if it exists.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Download a stream's video between --start and --end as one MP4.

    Copied, not re-encoded: it starts at the keyframe at or before --start and skips gaps.
    """
    check_range(start, end)
    if output is not None:
        _check_output(output, overwrite)
    params = {"start": start.isoformat(), "end": end.isoformat()}
    with connect(url, token) as remote, _progress() as progress:
        task = progress.add_task(f"exporting {name}", total=None)
        with remote.stream(
            stream_path(name, "export.mp4"), params=params, read_timeout=EXPORT_READ_TIMEOUT_S
        ) as response:
            target = output or Path(_filename(response) or f"{name}.mp4")
            _check_output(target, overwrite)
            length = int(response.headers.get("Content-Length", 0)) or None
            progress.update(task, description=f"downloading {target.name}", total=length)
            size = _download(response, target, progress, task, length)
    stderr().print(_summary(target, size, response.headers))


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeElapsedColumn(), console=stderr(), transient=True,
        disable=not stderr().is_terminal,  # scripts get the summary line only
    )  # fmt: skip


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise typer.BadParameter(f"{path} exists (--overwrite replaces it)", param_hint="'-o'")
    if not path.parent.is_dir():
        raise typer.BadParameter(f"folder {path.parent} does not exist", param_hint="'-o'")


def _filename(response: Response) -> str | None:
    """The file name Vigil proposes (Content-Disposition), reduced to a plain name."""
    found = _FILENAME.search(response.headers.get("Content-Disposition", ""))
    name = Path(found.group(1)).name if found else ""
    return name if name and not name.startswith(".") else None


def _download(
    response: Response, target: Path, progress: Progress, task: TaskID, length: int | None
) -> int:
    """Write the body beside `target` and move it there once whole: an interrupted download
    leaves no file that looks complete."""
    part = target.with_name(f".{target.name}.part")
    size = 0
    try:
        with part.open("wb") as file:
            for chunk in response.iter_bytes(CHUNK):
                file.write(chunk)
                size += len(chunk)
                progress.update(task, completed=size)
        if length is not None and size != length:
            raise RemoteError(f"the download ended after {size} of {length} bytes")
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return size


def _summary(target: Path, size: int, headers: HTTPMessage) -> str:
    first, last = headers.get("X-Vigil-Start"), headers.get("X-Vigil-End")
    text = f"wrote {escape(str(target))} ({show_size(size)})"
    if first and last:
        covered = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        text += f": {show_time(first)} → {show_time(last)} UTC ({show_duration(covered)})"
    skipped = float(headers.get("X-Vigil-Skipped-Seconds", 0) or 0)
    if skipped > 0:
        text += f", {show_duration(skipped)} of gaps left out"
    if reason := headers.get("X-Vigil-Ended-Early"):
        text += f"; it ends early: {escape(reason)}"
    return text
