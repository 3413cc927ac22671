"""`vigil streams list|add|rm|start|stop`: the streams of a running Vigil, through its API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.commands.choices import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS, TransportChoice
from vigil.commands.client import (
    DEFAULT_URL,
    EXIT_FAILED,
    JsonOption,
    Remote,
    RemoteError,
    TokenOption,
    UrlOption,
    connect,
    fail,
    print_json,
    report,
    stream_path,
)
from vigil.commands.output import escape, stderr
from vigil.commands.times import show_time

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(
    rich_markup_mode=None,
    help="List, add, remove, start and stop the streams of a running Vigil (over its API).",
    no_args_is_help=True,
)

STATE_STYLES = {
    "streaming": "green",
    "starting": "cyan",
    "stalled": "yellow",
    "reconnecting": "yellow",
    "failed": "red",
    "stopped": "dim",
}
NamesArgument = Annotated[
    list[str], typer.Argument(help="Stream names.", metavar="NAME...", show_default=False)
]


@app.command("list")
def list_streams(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Every configured stream: state, recording, origin and source (password masked)."""
    from rich.console import Console

    with connect(url, token) as remote:
        streams = remote.get("/streams")
    if as_json:
        print_json(streams)
        return
    if not streams:
        stderr().print("no streams are configured")
        return
    Console().print(streams_table(streams))


def streams_table(streams: list[dict[str, Any]]) -> Table:
    """One row per stream, as `GET /api/v1/streams` gives them."""
    from rich.table import Table
    from rich.text import Text

    # Name and state stay whole in a narrow terminal; the source folds rather than being cut.
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for header in ("reason", "since (UTC)", "recording", "reconnects", "origin"):
        table.add_column(header)
    table.add_column("source", overflow="fold")
    for stream in streams:
        config = stream["config"]
        state = str(stream["state"])
        table.add_row(
            stream["name"], Text(state, style=STATE_STYLES.get(state, "")), stream["reason"],
            show_time(stream["since"]), "on" if config["record"] else "off",
            str(stream["reconnects"]), stream["origin"], config["source"],
        )  # fmt: skip
    return table


@app.command("add")
def add(
    name: Annotated[
        str, typer.Argument(help="Its name: letters, digits, '-' and '_'.", metavar="NAME")
    ],
    source: Annotated[
        str,
        typer.Argument(
            help="rtsp://USER:PASSWORD@HOST/PATH, rtsps://, file://, test://…", metavar="SOURCE"
        ),
    ],
    transport: Annotated[
        TransportChoice | None, typer.Option(help="RTSP transport (default: the configuration's).")
    ] = None,
    record: Annotated[
        bool | None, typer.Option("--record/--no-record", help="Record it (default: yes).")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Run it (default: yes).")
    ] = None,
    segment_seconds: Annotated[
        int | None,
        typer.Option(
            min=MIN_SEGMENT_SECONDS,
            max=MAX_SEGMENT_SECONDS,
            help="Length of its files (default: the configuration's).",
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Add a stream (admin); Vigil starts it at once and keeps it across restarts."""
    body: dict[str, object] = {"name": name, "source": source}
    optional = {"transport": transport, "record": record, "enabled": enabled,
                "segment_seconds": segment_seconds}  # fmt: skip
    body.update({key: value for key, value in optional.items() if value is not None})
    with connect(url, token) as remote:
        created = remote.post("/streams", body)
    stderr().print(
        f"added stream '{escape(created['name'])}' ({escape(created['config']['source'])}): "
        f"{created['state']}"
    )


@app.command("rm")
def remove(names: NamesArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Remove streams (admin); their recordings stay.

    A stream of the configuration file stays removed until the API's change of it is reset
    (`POST /api/v1/streams/NAME/reset`).
    """

    def remove_one(remote: Remote, name: str) -> str:
        remote.delete(stream_path(name))
        return f"removed stream '{escape(name)}' (its recordings stay)"

    _each(url, token, names, remove_one)


@app.command("start")
def start(names: NamesArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Start streams (operator); kept across restarts."""

    def start_one(remote: Remote, name: str) -> str:
        started = remote.post(stream_path(name, "start"))
        return f"started stream '{escape(name)}': {started['state']}"

    _each(url, token, names, start_one)


@app.command("stop")
def stop(names: NamesArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Stop streams (operator; the open segment is finished); kept across restarts."""

    def stop_one(remote: Remote, name: str) -> str:
        remote.post(stream_path(name, "stop"))
        return f"stopped stream '{escape(name)}'"

    _each(url, token, names, stop_one)


def _each(
    url: str, token: str | None, names: list[str], action: Callable[[Remote, str], str]
) -> None:
    """Do `action` to every stream named, going on past a stream it fails for (each failure is
    printed; the exit code is 1) but not past an unreachable Vigil or a refused token."""
    try:
        for name in names:
            stream_path(name)  # every name checked before any is acted on
    except RemoteError as error:
        fail(error)
    failed = False
    with connect(url, token) as remote:
        for name in names:
            try:
                stderr().print(action(remote, name))
            except RemoteError as error:
                if error.ends_the_command:
                    raise
                report(error)
                failed = True
    if failed:
        raise typer.Exit(EXIT_FAILED)
