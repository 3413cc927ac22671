"""`vigil backup create|list|restore`: archives of Vigil's database and configuration file.

`create` and `list` work while Vigil runs (the database is copied with SQLite's online backup
API); `restore` refuses while anything has the database open (see `vigil.ops.restore`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.commands.client import JsonOption, print_json
from vigil.commands.output import escape
from vigil.commands.output import stderr as console
from vigil.commands.times import show_size, show_time

if TYPE_CHECKING:
    # Imported when the command runs: the configuration and the archive code (SQLAlchemy,
    # Alembic) cost over a second that every other command would pay (see cli.py).
    from vigil.config import ResolvedConfig
    from vigil.ops.backup import ArchiveInfo

app = typer.Typer(
    rich_markup_mode=None,
    help="Back up and restore Vigil's database and configuration.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help="Vigil's YAML configuration: where the DB and backups are; backed up with them.",
    ),
]  # fmt: skip
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", "-d", help="Backup directory (default: backup.dir of the config, "
                 "else <data_dir>/backups)."),
]  # fmt: skip


def _load(config: Path | None) -> ResolvedConfig:
    from vigil.cli import _load as load

    return load(config)


def _backup_dir(resolved: ResolvedConfig, directory: Path | None) -> Path:
    return directory or resolved.backup_dir or resolved.data_dir / "backups"


def _fail(message: str) -> typer.Exit:
    console().print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


@app.command("create")
def create(
    config: ConfigOption = None,
    directory: DirOption = None,
    prune: Annotated[
        bool,
        typer.Option(help="Then delete all but the newest backup.keep archives in the directory."),
    ] = True,
) -> None:
    """Back up the database (and the --config file) into one archive; print its path."""
    from vigil.ops.archive import BackupError
    from vigil.ops.backup import create_backup
    from vigil.ops.backup import prune_archives as prune_old_archives

    resolved = _load(config)
    target = _backup_dir(resolved, directory)
    try:
        result = create_backup(resolved.database_path, target, config=config)
    except (BackupError, OSError) as error:
        raise _fail(f"no backup made: {error}") from None
    with_config = ", with the configuration" if config is not None else ""
    console().print(
        f"backup written ({show_size(result.size_bytes)}, schema "
        f"{result.manifest.schema_revision}{with_config}):"
    )
    print(result.path)
    if prune:
        keep = resolved.config.backup.keep
        for path in prune_old_archives(target, keep):
            console().print(f"deleted {escape(path.name)} (keeping the newest {keep})")


def _row(info: ArchiveInfo) -> dict[str, Any]:
    manifest = info.manifest
    return {
        "path": str(info.path),
        "created_at": (manifest.created_at if manifest else info.name_time).isoformat(),
        "size_bytes": info.size_bytes,
        "schema_revision": manifest.schema_revision if manifest else None,
        "vigil_version": manifest.vigil_version if manifest else None,
        "has_config": manifest.has_config if manifest else None,
        "verified": info.ok,
        "problem": info.problem,
    }


@app.command("list")
def list_backups(
    config: ConfigOption = None, directory: DirOption = None, as_json: JsonOption = False
) -> None:
    """List the archives, newest first, each verified completely (checksums, DB integrity)."""
    from rich.console import Console
    from rich.table import Table

    from vigil.ops.backup import inspect_archives

    target = _backup_dir(_load(config), directory)
    infos = inspect_archives(target)
    if as_json:
        print_json([_row(info) for info in infos])
        return
    if not infos:
        console().print(f"no backups in {escape(str(target))}")
        return
    table = Table("archive", "created (UTC)", "size", "schema", "Vigil", "config", "verified",
                  caption=str(target))  # fmt: skip
    for info in infos:
        row = _row(info)
        verified = "[green]ok[/]" if info.ok else f"[red]{escape(info.problem or '')}[/]"
        table.add_row(
            escape(info.path.name), show_time(row["created_at"]), show_size(info.size_bytes),
            row["schema_revision"] or "", row["vigil_version"] or "",
            {True: "yes", False: "no", None: ""}[row["has_config"]], verified,
        )  # fmt: skip
    Console(soft_wrap=True).print(table)


@app.command("restore")
def restore(
    archive: Annotated[
        Path, typer.Argument(help="The archive: a path, or a name in the backup directory.")
    ],
    config: ConfigOption = None,
    restore_config: Annotated[
        bool,
        typer.Option(
            "--restore-config",
            help="Also replace the --config file with the archive's copy (off by default).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Restore even though something has the database open (not Vigil!)."
        ),
    ] = False,
) -> None:
    """Replace the database with the archive's copy, verified first; Vigil must be stopped.

    The replaced database is kept as <db>.before-restore-<UTC time>.
    """
    from vigil.ops.archive import BackupError
    from vigil.ops.restore import restore_backup

    resolved = _load(config)
    if restore_config and config is None:
        console().print("[red]error:[/] --restore-config needs --config FILE (the file to replace)")
        raise typer.Exit(2)
    path = archive
    if not path.exists() and archive.parent == Path("."):
        path = _backup_dir(resolved, None) / archive.name
    try:
        result = restore_backup(
            path,
            resolved.database_path,
            config_path=config if restore_config else None,
            force=force,
        )
    except BackupError as error:
        raise _fail(f"not restored: {error}") from None
    manifest = result.manifest
    console().print(
        f"restored {escape(path.name)} (made {show_time(manifest.created_at)} UTC by Vigil "
        f"{escape(manifest.vigil_version)}, schema {escape(manifest.schema_revision)})"
    )
    console().print(f"  database:  {escape(str(result.database))}")
    if result.database_aside is not None:
        console().print(f"  previous:  {escape(str(result.database_aside))}")
    if result.config is not None:
        console().print(f"  config:    {escape(str(result.config))}")
        if result.config_aside is not None:
            console().print(f"  previous:  {escape(str(result.config_aside))}")
    console().print("Vigil migrates the database to its newest schema when it starts.")
