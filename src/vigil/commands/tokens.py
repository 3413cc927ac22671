"""`vigil tokens create|list|revoke`: API bearer tokens, kept (hashed) in Vigil's database.

Works whether or not Vigil runs: a running Vigil sees a new or revoked token within a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.commands.choices import RoleChoice
from vigil.commands.output import stderr

if TYPE_CHECKING:
    # Imported when the command runs: SQLAlchemy and Alembic cost a second (see cli.py).
    from vigil.store.db import Database
    from vigil.store.tokens import TokenStore

app = typer.Typer(
    rich_markup_mode=None, help="Create, list and revoke API tokens.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Vigil's YAML configuration (it says where the DB is)."),
]


def _store(config: Path | None) -> tuple[Database, TokenStore]:
    from vigil.cli import _load
    from vigil.store.db import Database
    from vigil.store.tokens import TokenStore

    resolved = _load(config)
    db = Database(resolved.database_path)
    db.migrate()
    return db, TokenStore(db)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. 'home-assistant'.")],
    role: Annotated[
        RoleChoice, typer.Option(help="viewer, operator or admin.")
    ] = RoleChoice.VIEWER,
    config: ConfigOption = None,
) -> None:
    """Create a token and print it (only now: Vigil keeps only its hash)."""
    from vigil.store.tokens import Role, TokenNameTakenError

    db, store = _store(config)
    try:
        token = store.create(name, Role(role.value))
    except TokenNameTakenError as error:
        stderr(highlight=True).print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    finally:
        db.close()
    stderr(highlight=True).print(f"token '{name}' ({role}) created; it is shown only once:")
    print(token)


@app.command("list")
def list_tokens(config: ConfigOption = None) -> None:
    """List tokens (names, roles, dates; never the tokens)."""
    from rich.console import Console
    from rich.table import Table

    db, store = _store(config)
    try:
        rows = store.list()
    finally:
        db.close()
    table = Table("name", "role", "created (UTC)", "revoked (UTC)")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if row.revoked_at else ""
        table.add_row(row.name, row.role.value, row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      revoked)  # fmt: skip
    Console().print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token: it stops working within a second, also in a running Vigil."""
    from vigil.store.tokens import TokenNotFoundError

    db, store = _store(config)
    try:
        store.revoke(name)
    except TokenNotFoundError as error:
        stderr(highlight=True).print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    finally:
        db.close()
    stderr(highlight=True).print(f"token '{name}' revoked")
