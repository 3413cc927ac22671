"""`vigil backup create|list|restore` as a user runs them: a real database, files and archives."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.ops.archive import DATABASE_MEMBER, known_schema_revisions
from vigil.store.db import Database
from vigil.store.tokens import Role, TokenStore

CONFIG_TEXT = "data_dir: ./data\nbackup:\n  keep: 2\n"


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


def vigil(*args: str) -> Ran:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


@dataclass(frozen=True)
class Site:
    config: Path
    database: Path
    backups: Path

    def tokens(self) -> list[str]:
        with Database(self.database) as db:
            db.migrate()
            return sorted(row.name for row in TokenStore(db).list())

    def add_token(self, name: str) -> None:
        with Database(self.database) as db:
            db.migrate()
            TokenStore(db).create(name, Role.VIEWER)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config = tmp_path / "vigil.yml"
    config.write_text(CONFIG_TEXT)
    site = Site(config, tmp_path / "data" / "vigil.db", tmp_path / "data" / "backups")
    site.add_token("ops")
    yield site


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_create_list_restore_round_trip(site: Site) -> None:
    created = vigil("backup", "create", "-c", str(site.config))
    assert created.exit_code == 0, created.stderr
    archive = Path(created.stdout.strip())
    assert archive.parent == site.backups and archive.name.startswith("vigil-backup-")
    head = known_schema_revisions()[-1]
    assert f"schema {head}, with the configuration" in created.stderr

    listed = vigil("backup", "list", "-c", str(site.config))
    assert listed.exit_code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if archive.name in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[0] == archive.name
    assert cells[3:] == [head, "0.1.0", "yes", "ok"]
    as_json = json.loads(vigil("backup", "list", "-c", str(site.config), "--json").stdout)
    assert [entry["path"] for entry in as_json] == [str(archive)]
    assert as_json[0]["verified"] is True and as_json[0]["problem"] is None
    assert as_json[0]["size_bytes"] == archive.stat().st_size

    site.add_token("intruder")
    restored = vigil("backup", "restore", archive.name, "-c", str(site.config))  # by name

    assert restored.exit_code == 0, restored.stderr
    assert site.tokens() == ["ops"]
    previous = next(site.database.parent.glob("vigil.db.before-restore-*"))
    assert f"previous:  {previous}" in restored.stderr
    assert "config:" not in restored.stderr  # the configuration only with --restore-config


def test_restore_refuses_a_truncated_archive_with_one_line_and_changes_nothing(site: Site) -> None:
    archive = Path(vigil("backup", "create", "-c", str(site.config)).stdout.strip())
    with tarfile.open(archive) as tar:
        member = tar.getmember(DATABASE_MEMBER)
    os.truncate(archive, member.offset_data + 1000)
    site.add_token("after")
    before = files_under(site.config.parent)

    refused = vigil("backup", "restore", str(archive), "-c", str(site.config))

    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: not restored: archive is truncated or damaged: unexpected end of data in vigil.db\n"
    )
    assert files_under(site.config.parent) == before
    assert site.tokens() == ["after", "ops"]
    listed = vigil("backup", "list", "-c", str(site.config), "--json")
    assert json.loads(listed.stdout)[0]["problem"].startswith("archive is truncated")


def test_restore_refuses_while_the_database_is_open(site: Site) -> None:
    archive = Path(vigil("backup", "create", "-c", str(site.config)).stdout.strip())
    with Database(site.database) as db:
        TokenStore(db).list()
        refused = vigil("backup", "restore", str(archive), "-c", str(site.config))
    assert refused.exit_code == 1
    assert "is in use (is Vigil running?)" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert not list(site.database.parent.glob("*.before-restore-*"))


def test_restore_config_is_opt_in_and_needs_the_file(site: Site) -> None:
    archive = Path(vigil("backup", "create", "-c", str(site.config)).stdout.strip())
    site.config.write_text(CONFIG_TEXT.replace("keep: 2", "keep: 5"))

    without_file = vigil("backup", "restore", str(archive), "--restore-config")
    assert without_file.exit_code == 2
    assert "--restore-config needs --config FILE" in without_file.stderr

    restored = vigil("backup", "restore", str(archive), "-c", str(site.config), "--restore-config")
    assert restored.exit_code == 0, restored.stderr
    assert site.config.read_text() == CONFIG_TEXT
    kept = next(site.config.parent.glob("vigil.yml.before-restore-*"))
    assert "keep: 5" in kept.read_text()


def test_create_prunes_to_backup_keep_unless_told_not_to(site: Site) -> None:
    made = []
    for _ in range(3):
        ran = vigil("backup", "create", "-c", str(site.config), "--no-prune")
        assert ran.exit_code == 0, ran.stderr
        made.append(Path(ran.stdout.strip()))
    assert len(set(made)) == 3  # the same second gets -1, -2: nothing is overwritten
    (site.backups / "README").write_text("operator's notes")

    ran = vigil("backup", "create", "-c", str(site.config))

    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr.count("(keeping the newest 2)") == 2
    remaining = sorted(path.name for path in site.backups.iterdir())
    assert len(remaining) == 3 and "README" in remaining
    assert Path(ran.stdout.strip()).name in remaining


def test_list_and_create_name_what_is_wrong(site: Site, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    listed = vigil("backup", "list", "-c", str(site.config), "--dir", str(empty))
    assert listed.exit_code == 0
    assert listed.stderr.strip() == f"no backups in {empty}"

    site.database.write_bytes(b"not a database" * 1000)
    failed = vigil("backup", "create", "-c", str(site.config))
    assert failed.exit_code == 1
    assert failed.stderr == (
        f"error: no backup made: cannot copy database {site.database}: file is not a database\n"
    )
    assert not site.backups.exists() or not list(site.backups.iterdir())
