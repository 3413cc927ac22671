"""The `vigil` command line: run the service, the camera simulator, checks and references.

Start-up time matters here (a restart's cost in video is the time to the first recorded frame,
and `vigil streams list` should answer at once), so this module and the command modules it
registers import only typer and the standard library at the top: each command imports what it
needs when it runs. tests/test_cli_imports.py checks that `vigil version` / `--help` load no
configuration, database, web or media module and that the API client loads no database or gi.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil import __version__
from vigil.commands import backup as backup_commands
from vigil.commands import export as export_command
from vigil.commands import models as models_commands
from vigil.commands import recordings as recordings_commands
from vigil.commands import storage as storage_commands
from vigil.commands import streams as streams_commands
from vigil.commands import tokens as tokens_commands
from vigil.commands.choices import LogFormatChoice
from vigil.commands.output import stderr

if TYPE_CHECKING:
    from vigil.config import ResolvedConfig

# Plain help and usage errors (click's), here and in every command group: typer's rich
# rendering imports rich's markdown, syntax and traceback modules and doubles `vigil --help`.
app = typer.Typer(
    rich_markup_mode=None,
    help="Vigil: record, re-serve and watch many cameras.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    rich_markup_mode=None,
    help="Check the configuration file and print its schema.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(tokens_commands.app, name="tokens")
app.add_typer(streams_commands.app, name="streams")
app.add_typer(recordings_commands.app, name="recordings")
app.add_typer(backup_commands.app, name="backup")
app.add_typer(storage_commands.app, name="storage")
app.add_typer(models_commands.app, name="models")
app.command("export")(export_command.export)

EXIT_CONFIG = 2

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (default: the built-in demo)."),
]


def _load(path: Path | None) -> ResolvedConfig:
    """Load and resolve the configuration, or exit 2 naming every problem."""
    from vigil.config import ConfigError, config_base_dir, default_config, load_config, resolve

    console = stderr(highlight=True)
    try:
        if path is None:
            return resolve(default_config(), base_dir=Path.cwd())
        if not path.is_file():
            console.print(f"[red]error:[/] configuration file {path} does not exist")
            raise typer.Exit(EXIT_CONFIG)
        return resolve(load_config(path), base_dir=config_base_dir(path))
    except ConfigError as error:
        console.print(f"[red]invalid configuration[/] ({len(error.issues)} problem(s)):")
        print(str(error), file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def run(
    config: ConfigOption = None,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option(
            "--log-format",
            help="text or json; overrides the configuration's log.format.",
            case_sensitive=False,
        ),
    ] = None,
) -> None:
    """Run Vigil: start the streams and record them until Ctrl-C or SIGTERM."""
    import signal

    # Until the service's own handlers are in place (after imports and set-up), a stop request
    # simply ends the process cleanly: nothing is being recorded yet.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    import asyncio

    resolved = _load(config)
    from vigil.observability.logging import setup_logging

    setup_logging(resolved.log.level.value, (log_format or resolved.log.format).value)
    sys.exit(asyncio.run(_serve(resolved, config)))


async def _serve(resolved: ResolvedConfig, config_path: Path | None) -> int:
    import asyncio
    import logging
    import os
    import signal

    from vigil.app import Vigil

    console = stderr(highlight=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            console.print("second signal: exiting now")
            os._exit(128 + signum)
        console.print(f"{signal.Signals(signum).name}: stopping (finishing open segments)…")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

    from vigil.ops.systemd import Notifier, watchdog_interval_from_environment

    vigil = Vigil(
        resolved,
        notifier=Notifier.from_environment(),
        watchdog_interval=watchdog_interval_from_environment(),
        config_path=config_path,
    )
    try:
        summary = await vigil.start()
        console.print(f"[bold]Vigil {summary.version}[/] is recording {summary.streams} stream(s)")
        for index, volume in enumerate(summary.volumes or [summary.recording_root]):
            console.print(f"  {'recordings:' if index == 0 else '':<11} {volume}")
        console.print(f"  database:   {summary.database}")
        console.print(f"  API:        {summary.api_url}  (docs: {summary.api_url}/docs)")
        if summary.rtsp_url:
            console.print(f"  RTSP:       {summary.rtsp_url}")
        if summary.simulator_urls:
            console.print(
                f"  simulator:  {summary.simulator_urls[0]} … "
                f"({len(summary.simulator_urls)} cameras)"
            )
        console.print("Press Ctrl-C to stop.")
        await stop.wait()
    except OSError as exc:  # a port taken, a directory not writable: the message says which
        logging.getLogger("vigil").error("Vigil cannot start: %s", exc)
        return 1
    except Exception:
        logging.getLogger("vigil").exception("Vigil failed")
        return 1
    finally:
        await vigil.stop()
    return 0


@app.command()
def sim(
    cameras: Annotated[int, typer.Option(min=1, max=1000, help="Number of cameras.")] = 4,
    port: Annotated[int, typer.Option(min=1, max=65535, help="RTSP port.")] = 8654,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    codec: Annotated[str, typer.Option(help="h264 or h265.")] = "h264",
    size: Annotated[str, typer.Option(help="Picture size WxH.")] = "1280x720",
    fps: Annotated[int, typer.Option(min=1, max=120)] = 25,
    bitrate: Annotated[int, typer.Option(min=50, max=100000, help="kbit/s.")] = 2000,
    gop: Annotated[
        int | None, typer.Option(help="Frames between keyframes (default: fps).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Loop this video file instead of a pattern.")
    ] = None,
    auth: Annotated[
        str | None, typer.Option(help="USER:PASSWORD the cameras demand (Basic or Digest).")
    ] = None,
    keyframe_on_join: Annotated[
        bool, typer.Option(help="Send a keyframe when a viewer joins (most cameras do).")
    ] = True,
    stamp_time: Annotated[
        bool,
        typer.Option(help="Draw the wall-clock time into every frame (latency benchmarks)."),
    ] = False,
) -> None:
    """Serve simulated RTSP cameras rtsp://HOST:PORT/cam1 … camN (encoded once, fanned out)."""
    import signal

    from vigil.ops.simulator_process import READY_LINE

    console = stderr(highlight=True)
    if codec not in ("h264", "h265"):
        console.print(f"[red]error:[/] --codec must be h264 or h265, not {codec!r}")
        raise typer.Exit(EXIT_CONFIG)
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        console.print(f"[red]error:[/] --size must look like 1280x720, not {size!r}")
        raise typer.Exit(EXIT_CONFIG) from None
    credentials: tuple[str, str] | None = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user:
            console.print("[red]error:[/] --auth must look like USER:PASSWORD")
            raise typer.Exit(EXIT_CONFIG)
        credentials = (user, password)
    if file is not None and not file.is_file():
        console.print(f"[red]error:[/] --file {file} does not exist")
        raise typer.Exit(EXIT_CONFIG)
    from vigil.media.framestamp import MIN_WIDTH

    if stamp_time and width < MIN_WIDTH:
        console.print(f"[red]error:[/] --stamp-time needs a picture at least {MIN_WIDTH} wide")
        raise typer.Exit(EXIT_CONFIG)

    from gi.repository import GLib

    from vigil.media.simulator import CameraSimulator, SimulatorSettings

    settings = SimulatorSettings(
        cameras=cameras,
        port=port,
        host=host,
        codec=codec,
        width=width,
        height=height,
        fps=fps,
        bitrate_kbit=bitrate,
        gop_frames=gop,
        file=file.resolve() if file else None,
        auth=credentials,
        keyframe_on_join=keyframe_on_join,
        stamp_time=stamp_time,
    )
    simulator = CameraSimulator(settings)
    loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, lambda: loop.quit() or False)
    try:
        simulator.start()
    except (OSError, RuntimeError) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    urls = settings.urls()
    console.print(
        f"simulating {cameras} {codec} camera(s) {size}@{fps} {bitrate} kbit/s: "
        f"{urls[0]} … {urls[-1]}"
    )
    print(READY_LINE, flush=True)
    try:
        loop.run()
    finally:
        simulator.stop()


@app.command()
def doctor() -> None:
    """Report GStreamer's version and which elements Vigil needs are present or missing."""
    from rich.console import Console
    from rich.table import Table

    from vigil.media.doctor import examine

    report = examine()
    out = Console()
    out.print(f"GStreamer {report.gstreamer_version}")
    table = Table("element", "status", "package", "used for")
    for check in report.required:
        status = "[green]ok[/]" if check.present else "[red]MISSING[/]"
        table.add_row(check.element, status, check.package, check.purpose)
    for check in report.optional:
        status = "[green]ok[/]" if check.present else "[yellow]absent[/]"
        table.add_row(check.element, status, check.package, check.purpose)
    out.print(table)
    out.print("RTSP server library: " + ("ok" if report.rtsp_server else "[red]MISSING[/]"))
    out.print("hardware codecs: " + (", ".join(report.hardware) or "none registered"))
    if not report.ok:
        out.print(f"[red]missing:[/] apt-get install {' '.join(report.missing_packages)}")
        raise typer.Exit(1)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The YAML file to check.")]) -> None:
    """Validate a configuration file: exit 0 if valid, 2 with every problem if not."""
    resolved = _load(file)
    stderr(highlight=True).print(f"{file}: valid ({len(resolved.streams)} stream(s))")


@config_app.command("schema")
def config_schema() -> None:
    """Print the configuration's JSON Schema."""
    import json

    from vigil.config import json_schema

    print(json.dumps(json_schema(), indent=2))


@config_app.command("default")
def config_default() -> None:
    """Print the built-in configuration `vigil run` uses without --config."""
    from vigil.config import DEFAULT_CONFIG_YAML

    print(DEFAULT_CONFIG_YAML, end="")


@app.command()
def version() -> None:
    """Print Vigil's version."""
    print(__version__)


def main() -> None:
    """Entry point of the `vigil` console script."""
    if sys.argv[1:] == ["version"]:
        # Typer's own start (parsing, coercing values with pydantic) costs more than Python's;
        # the one command that is nothing but an answer skips it.
        version()
        return
    app()
