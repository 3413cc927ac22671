"""`vigil storage …`: recording volumes and the recording index.

`vigil storage reindex` works on the files and the database named by the configuration, with
or without Vigil running. Running alongside Vigil is safe: SQLite (WAL, busy timeout) takes a
second writer, files modified recently (that Vigil may still be writing, or has just created
and not yet indexed) are left alone, and open rows are not repaired (their files are growing);
but a corrupt database is not replaced under a running Vigil, which holds it open. Vigil counts
as running when another connection has a sound database open (SQLite's lock, see
`vigil.store.recovery.database_in_use`; a corrupt one is not probed, the probe would write to
it) or its API answers at the configured address.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.commands.client import (
    DEFAULT_URL,
    RemoteError,
    TokenOption,
    UrlOption,
    connect,
    fail,
    print_json,
)
from vigil.commands.client import (
    JsonOption as ClientJsonOption,
)
from vigil.commands.output import escape, stderr
from vigil.commands.times import show_size, show_time

if TYPE_CHECKING:
    # `reindex` imports these when it runs: the configuration, SQLAlchemy and the recording
    # code cost over a second that every other command would pay (see cli.py).
    from vigil.config import ResolvedConfig
    from vigil.recording.rebuild import FoundVolume, VolumeResult
    from vigil.store.recovery import CheckedDatabase

app = typer.Typer(
    rich_markup_mode=None, help="Recording volumes and the recording index.", no_args_is_help=True
)

EXIT_FAILED = 1
EXIT_USAGE = 2
PROBE_TIMEOUT_S = 1.0
# With Vigil running, files younger than this many segment lengths may still be written.
RUNNING_MIN_AGE_SEGMENTS = 3

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Vigil's YAML configuration (it names the volumes and the DB)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of lines of text.")
]


@dataclass(frozen=True, slots=True)
class _Rebuild:
    """What one `reindex` command did, for printing."""

    database: CheckedDatabase
    volumes: list[VolumeResult]
    gaps: int | None  # None: not reconstructed
    gaps_note: str
    running: str | None


@app.command("reindex")
def reindex_command(
    volume: Annotated[
        str | None,
        typer.Option(
            "--volume", help="Only this volume: its id, or the start of it (see the output)."
        ),
    ] = None,
    min_age: Annotated[
        float | None,
        typer.Option(
            "--min-age",
            min=0,
            show_default=False,
            help="Leave files modified less than this many seconds ago (default: 0, or three "
            "segment lengths when Vigil seems to be running).",
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the recording index from the files on the volumes (a lost or corrupt database).

    Files the index does not know are probed and indexed; unusable ones are moved to the
    volume's .quarantine/; nothing is deleted, and running it again finds nothing new. Exit 0
    on success, 1 if anything failed, 2 for a wrong command line or configuration, or a
    corrupt database under a running Vigil.
    """
    from vigil.cli import _load
    from vigil.recording.rebuild import UnknownVolumeError, select, survey
    from vigil.store.recovery import CorruptDatabaseError, database_problem, open_checked

    resolved = _load(config)
    database = resolved.database_path
    problem = database_problem(database) if database.exists() else None
    running = _vigil_running(resolved, probe_database=problem is None)
    if running is not None:
        stderr().print(
            f"[yellow]warning:[/] {escape(running)}: indexing alongside Vigil "
            "(files it may still be writing are left alone)"
        )
    if min_age is None:
        seconds = _running_min_age_s(resolved) if running is not None else 0.0
    else:
        seconds = min_age
    found = survey(resolved.volumes)
    if volume is not None:
        try:
            found = [select(found, volume)]
        except UnknownVolumeError as error:
            stderr().print(f"[red]error:[/] {escape(str(error))}")
            raise typer.Exit(EXIT_USAGE) from None
    try:
        checked = open_checked(database, problem=problem, replace_corrupt=running is None)
    except CorruptDatabaseError as error:
        stderr().print(
            f"[red]error:[/] the database {escape(str(error.path))} is corrupt "
            f"({escape(error.problem)}), and Vigil seems to be running ({escape(running or '')})"
            ": stop Vigil, then run this again to move it aside and rebuild it"
        )
        raise typer.Exit(EXIT_USAGE) from None
    try:
        rebuild = _rebuild(checked, found, seconds, every_volume=volume is None, running=running)
    finally:
        checked.db.close()
    if as_json:
        print(json.dumps(_as_json(rebuild), indent=2))
    else:
        _print(rebuild)
    if any(result.errors for result in rebuild.volumes):
        raise typer.Exit(EXIT_FAILED)


def _rebuild(
    checked: CheckedDatabase,
    found: list[FoundVolume],
    min_age_s: float,
    *,
    every_volume: bool,
    running: str | None,
) -> _Rebuild:
    from datetime import timedelta

    from vigil.recording.rebuild import (
        VolumeOutcome,
        index_is_empty,
        rebuild_volume,
        reconstruct_gaps,
    )
    from vigil.store.recordings import GapStore, SegmentStore
    from vigil.store.volumes import VolumeStore

    segments, gaps = SegmentStore(checked.db), GapStore(checked.db)
    from_nothing = index_is_empty(segments, gaps)
    results = [
        rebuild_volume(
            segments, VolumeStore(checked.db), volume,
            # A running Vigil's open rows are files it is writing.
            repair_open=running is None, min_age=timedelta(seconds=min_age_s),
        )
        for volume in found
    ]  # fmt: skip
    # Gaps are reconstructed only where they can be complete and cannot repeat recorded ones.
    if not from_nothing:
        note = "the index was not empty (its gaps were recorded as they happened)"
    elif running is not None:
        note = "Vigil is running and recording gaps itself"
    elif not every_volume or any(r.outcome is not VolumeOutcome.INDEXED for r in results):
        note = "not every volume was indexed (segments elsewhere would look like gaps)"
    elif any(r.errors for r in results):
        note = "some files could not be read"
    else:
        return _Rebuild(checked, results, reconstruct_gaps(segments, gaps), "", running)
    return _Rebuild(checked, results, None, note, running)


def _vigil_running(resolved: ResolvedConfig, *, probe_database: bool) -> str | None:
    """Why Vigil seems to be running on the configured database (for a message), or None.
    The database's lock is asked only if `probe_database` (the probe opens it read-write,
    which must not happen to a corrupt one); the API at the configured address always."""
    import sqlite3

    from vigil.store.recovery import database_in_use

    path = resolved.database_path
    try:
        if probe_database and database_in_use(path):
            return f"the database {path} is open in another program (a running Vigil?)"
    except (sqlite3.Error, OSError) as error:
        return f"cannot tell whether Vigil is running ({error})"
    url = _vigil_answering(resolved)
    return None if url is None else f"Vigil answers at {url}"


def _vigil_answering(resolved: ResolvedConfig) -> str | None:
    """The URL of the Vigil answering at the configured API address, or None."""
    host, port = resolved.api.host, resolved.api.port
    if port == 0:
        return None  # a port picked at start-up: nothing to ask
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    from http.client import HTTPConnection, HTTPException

    # Straight to the address (no proxy): the question is whether this machine's Vigil runs.
    connection = HTTPConnection(host, port, timeout=PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except (OSError, HTTPException):
        return None
    finally:
        connection.close()
    return url if status == 200 else None


def _running_min_age_s(resolved: ResolvedConfig) -> float:
    longest = max(
        [plan.segment_seconds for plan in resolved.streams]
        + [resolved.config.recording.segment_seconds]
    )
    return float(RUNNING_MIN_AGE_SEGMENTS * longest)


def _database_line(checked: CheckedDatabase) -> str:
    from vigil.store.recovery import DatabaseState

    path = checked.db.path
    moved = ", ".join(str(target) for target in checked.moved_to)
    match checked.state:
        case DatabaseState.EXISTING:
            return f"database {path}: existing"
        case DatabaseState.CREATED:
            line = f"database {path}: none found, created"
            return line + (f" ({checked.problem}: moved {moved} aside)" if moved else "")
        case _:
            return f"database {path}: corrupt ({checked.problem}); moved to {moved}; rebuilt"


def _volume_line(result: VolumeResult) -> str:
    name = f"volume {result.volume_id or '-'} {result.path}"
    report = result.report
    if report is None:
        return f"{name}: {result.outcome.value}: {result.detail}"
    line = (
        f"{name}: {report.files} files seen: {report.indexed} indexed, {report.known} already "
        f"known, {report.quarantined} quarantined, {report.errors} errors"
    )
    repaired = result.repaired.outcomes if result.repaired is not None else ()
    extras = [
        f"{len(repaired)} open rows left by a crash repaired" if repaired else "",
        f"{result.relocated} rows moved here from where the volume was before"
        if result.relocated
        else "",
        f"{result.volume_set} known rows given this volume" if result.volume_set else "",
        f"{report.ignored} not segments, left alone" if report.ignored else "",
        f"{report.recent} too recent, left for later" if report.recent else "",
        "identity file created" if result.identity_created else "",
    ]
    extras = [extra for extra in extras if extra]
    return line + (f" ({'; '.join(extras)})" if extras else "")


def _print(rebuild: _Rebuild) -> None:
    from vigil.recording.reindex import ReindexAction

    print(_database_line(rebuild.database))
    for result in rebuild.volumes:
        print(_volume_line(result))
        for outcome in result.report.outcomes if result.report else ():
            if outcome.action is ReindexAction.QUARANTINED:
                print(f"  quarantined {outcome.path}: {outcome.detail} -> {outcome.moved_to}")
            elif outcome.action is ReindexAction.ERROR:
                print(f"  error {outcome.path}: {outcome.detail}")
        for repair in result.repaired.outcomes if result.repaired else ():
            print(f"  open row {repair.path}: {repair.action.value}: {repair.detail}")
    if rebuild.gaps is not None:
        print(f"gaps: {rebuild.gaps} reconstructed between segments (reason unknown)")
    else:
        print(f"gaps: not reconstructed: {rebuild.gaps_note}")


def _as_json(rebuild: _Rebuild) -> dict[str, Any]:
    checked = rebuild.database
    return {
        "database": {
            "path": str(checked.db.path),
            "state": checked.state.value,
            "problem": checked.problem,
            "moved_to": [str(path) for path in checked.moved_to],
        },
        "vigil_running": rebuild.running,
        "volumes": [_volume_json(result) for result in rebuild.volumes],
        "gaps_reconstructed": rebuild.gaps,
        "gaps_note": rebuild.gaps_note or None,
    }


def _volume_json(result: VolumeResult) -> dict[str, Any]:
    report = result.report
    counts: dict[str, Any] = {}
    if report is not None:
        counts = {
            "files": report.files,
            "indexed": report.indexed,
            "known": report.known,
            "quarantined": report.quarantined,
            "ignored": report.ignored,
            "recent": report.recent,
            "outcomes": [
                {
                    "path": str(outcome.path),
                    "action": outcome.action.value,
                    "detail": outcome.detail,
                    "stream": outcome.stream,
                    "moved_to": None if outcome.moved_to is None else str(outcome.moved_to),
                }
                for outcome in report.outcomes
            ],
        }
    return {
        "id": result.volume_id,
        "path": str(result.path),
        "outcome": result.outcome.value,
        "detail": result.detail or None,
        "volume_set": result.volume_set,
        "relocated": result.relocated,
        "repaired": [
            {"path": str(repair.path), "action": repair.action.value, "detail": repair.detail}
            for repair in (result.repaired.outcomes if result.repaired else ())
        ],
        "identity_created": result.identity_created,
        "errors": result.errors,
        **counts,
    }


# -- the API client: volumes of a running Vigil ------------------------------------------------

VolumeArgument = Annotated[
    str,
    typer.Argument(help="The volume's id, or a unique prefix of it.", metavar="ID",
                   show_default=False),
]  # fmt: skip
EJECT_TIMEOUT_S = 60.0
ATTACH_TIMEOUT_S = 600.0


@app.command("status")
def status_command(
    as_json: ClientJsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Volumes of a running Vigil: state, space, and what retention deleted (over its API)."""
    from rich.console import Console
    from rich.table import Table

    with connect(url, token) as remote:
        answer = remote.get("/storage")
    if as_json:
        print_json(answer)
        return
    table = Table("id", "path", "state", "used", "free", "reason", "deleted")
    for volume in answer["volumes"]:
        used = (
            f"{show_size(volume['used_bytes'])} ({volume['usage_percent']:.0f}%)"
            if volume["used_bytes"] is not None else ""
        )  # fmt: skip
        table.add_row(
            (volume["id"] or "")[:8], escape(volume["path"]), volume["state"], used,
            show_size(volume["free_bytes"]) if volume["free_bytes"] is not None else "",
            escape(volume["reason"]), show_size(volume["bytes_deleted"]),
        )  # fmt: skip
    Console().print(table)
    oldest = show_time(answer["oldest_recording"]) or "none"
    Console(highlight=False).print(
        f"policy {answer['policy']}; retention deleted {answer['segments_deleted']} segment(s), "
        f"{show_size(answer['bytes_deleted'])}; oldest recording {oldest}"
    )
    if answer["blocked_streams"]:
        stderr().print(
            "[red]recording blocked (no space):[/] " + escape(", ".join(answer["blocked_streams"]))
        )


@app.command("eject")
def eject_command(
    volume: VolumeArgument,
    as_json: ClientJsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Stop recording onto a volume; returns once it is safe to unmount (admin token)."""
    # Vigil answers once the segments open there are finished: at their next keyframe.
    with connect(url, token, timeout=EJECT_TIMEOUT_S) as remote:
        answer = remote.post(f"/storage/volumes/{_volume_id(volume)}/eject")
    if as_json:
        print_json(answer)
    else:
        stderr().print(f"volume {answer['id']} at {escape(answer['path'])} is offline: "
                     "it may be unmounted")  # fmt: skip


@app.command("attach")
def attach_command(
    volume: VolumeArgument,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path", help="Where it is mounted now (default: where it was).", show_default=False
        ),
    ] = None,
    as_json: ClientJsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Bring a volume back (at its old path or a new one); its recordings are listed again."""
    body = None if path is None else {"path": str(path.absolute())}
    # Attaching reindexes the volume's files the index does not know: it may take a while.
    with connect(url, token, timeout=ATTACH_TIMEOUT_S) as remote:
        answer = remote.post(f"/storage/volumes/{_volume_id(volume)}/attach", body)
    if as_json:
        print_json(answer)
    else:
        stderr().print(f"volume {answer['id']} at {escape(answer['path'])} is {answer['state']}")


def _volume_id(text: str) -> str:
    value = text.strip().lower()
    if not value or any(c not in "0123456789abcdef-" for c in value) or len(value) > 36:
        fail(RemoteError(f"{text!r} is not a volume id (its UUID or a prefix of it)", EXIT_USAGE))
    return value
