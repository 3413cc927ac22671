"""`vigil recordings list|gaps|holds|hold|unhold`: what a running Vigil recorded of a stream,
and what retention must keep, through its API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.commands.client import (
    DEFAULT_URL,
    JsonOption,
    Remote,
    TokenOption,
    UrlOption,
    connect,
    print_json,
    stream_path,
)
from vigil.commands.output import escape, stderr
from vigil.commands.times import (
    EndOption,
    StartOption,
    check_range,
    option_time,
    show_duration,
    show_size,
    show_time,
)

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(
    rich_markup_mode=None,
    help="The recordings of a running Vigil: segments and gaps (over its API).",
    no_args_is_help=True,
)

PAGE = 1000  # the API's largest page
NameArgument = Annotated[
    str, typer.Argument(help="The stream's name.", metavar="NAME", show_default=False)
]


@app.command("list")
def list_recordings(
    name: NameArgument,
    start: StartOption = None,
    end: EndOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Every segment of a stream overlapping the range (default: all), oldest first."""
    from rich.console import Console

    check_range(start, end)
    with connect(url, token) as remote:
        segments = all_segments(remote, name, start, end)
    if as_json:
        print_json(segments)
        return
    if not segments:
        stderr().print(f"no recordings of '{escape(name)}'{_in_range(start, end)}")
        return
    Console().print(segments_table(segments))


def all_segments(
    remote: Remote, name: str, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    """Every segment in the range, following the API's cursor page after page."""
    params = _range(start, end) | {"limit": PAGE}
    segments: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = (params | {"cursor": cursor}) if cursor else params
        page = remote.get(stream_path(name, "segments"), query)
        segments += page["segments"]
        cursor = page["cursor"]
        if cursor is None:
            return segments


def segments_table(segments: list[dict[str, Any]]) -> Table:
    """One row per segment, and a caption with the count, the length and the size in all."""
    from rich.table import Table

    duration = sum(s["duration_s"] or 0 for s in segments)
    size = sum(s["size_bytes"] or 0 for s in segments)
    table = Table(
        "id", "start (UTC)", "end (UTC)", "length", "size", "video", "status",
        caption=f"{len(segments)} segment(s), {show_duration(duration)}, {show_size(size)}",
    )  # fmt: skip
    for segment in segments:
        video = " ".join(part for part in (segment["codec"], _picture(segment)) if part)
        table.add_row(
            str(segment["id"]), show_time(segment["start"]), show_time(segment["end"]),
            show_duration(segment["duration_s"]), show_size(segment["size_bytes"]), video,
            segment["status"],
        )  # fmt: skip
    return table


def _picture(segment: dict[str, Any]) -> str:
    width, height = segment["width"], segment["height"]
    return f"{width}x{height}" if width and height else ""


@app.command("gaps")
def list_gaps(
    name: NameArgument,
    start: StartOption = None,
    end: EndOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Every time a stream was not recorded in the range (default: all), with the reason."""
    from rich.console import Console
    from rich.table import Table

    check_range(start, end)
    with connect(url, token) as remote:
        answer = remote.get(stream_path(name, "gaps"), _range(start, end))
    gaps: list[dict[str, Any]] = answer["gaps"]
    if as_json:
        print_json(gaps)
    elif not gaps:
        stderr().print(f"no gaps in the recordings of '{escape(name)}'{_in_range(start, end)}")
    else:
        table = Table("start (UTC)", "end (UTC)", "length", "reason")
        for gap in gaps:
            table.add_row(show_time(gap["start"]), show_time(gap["end"]) or "(ongoing)",
                          show_duration(gap["duration_s"]), gap["reason"])  # fmt: skip
        Console().print(table)
    if answer["truncated"]:
        stderr().print("[yellow]more gaps than one answer holds:[/] narrow the range with --start")


def _range(start: datetime | None, end: datetime | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if start is not None:
        params["start"] = start.isoformat()
    if end is not None:
        params["end"] = end.isoformat()
    return params


def _in_range(start: datetime | None, end: datetime | None) -> str:
    return " in that range" if start is not None or end is not None else ""


# -- holds: recordings retention must keep -------------------------------------------------

UntilOption = Annotated[
    datetime | None,
    typer.Option(parser=option_time, metavar="TIME", show_default=False,
                 help="Keep until (same forms as --start); default: for ever."),
]  # fmt: skip


@app.command("holds")
def list_holds(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Holds that keep recordings from retention."""
    from rich.console import Console
    from rich.table import Table

    with connect(url, token) as remote:
        holds: list[dict[str, Any]] = remote.get("/recordings/holds")
    if as_json:
        print_json(holds)
        return
    if not holds:
        stderr().print("no holds")
        return
    table = Table("id", "stream", "from (UTC)", "to (UTC)", "until (UTC)", "reason")
    for hold in holds:
        table.add_row(str(hold["id"]), hold["stream"] or "(all)", show_time(hold["start"]),
                      show_time(hold["end"]), show_time(hold["until"]) or "for ever",
                      escape(hold["reason"]))  # fmt: skip
    Console().print(table)


@app.command("hold")
def add_hold(
    start: StartOption = None,
    end: EndOption = None,
    stream: Annotated[
        str | None, typer.Option("--stream", help="Only this stream (default: every stream).")
    ] = None,
    until: UntilOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown in listings).")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Keep the recordings of a time range from retention (operator token)."""
    if start is None or end is None:
        stderr().print("[red]error:[/] --start and --end are both needed")
        raise typer.Exit(2)
    check_range(start, end)
    body: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(), "reason": reason}
    if stream is not None:
        body["stream"] = stream_path(stream).split("/")[2]  # validates the name
    if until is not None:
        body["until"] = until.isoformat()
    with connect(url, token) as remote:
        hold = remote.post("/recordings/holds", body)
    stderr().print(f"hold {hold['id']} keeps {hold['stream'] or 'every stream'} from "
                 f"{show_time(hold['start'])} to {show_time(hold['end'])}")  # fmt: skip


@app.command("unhold")
def remove_hold(
    hold_id: Annotated[
        int, typer.Argument(help="The hold's id (`vigil recordings holds`).", metavar="ID", min=1)
    ],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Remove a hold; retention may then delete what it kept."""
    with connect(url, token) as remote:
        remote.delete(f"/recordings/holds/{hold_id}")
    stderr().print(f"hold {hold_id} removed")
