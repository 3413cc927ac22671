"""The backup archive format: its manifest, and verifying an archive completely.

An archive is a plain tar holding ``manifest.json`` (format name and version, the Vigil version
and time that made it, the database's schema revision, and the size and SHA-256 of every other
member), ``vigil.db`` (a self-contained SQLite database) and optionally ``config.yaml``.
Verification trusts nothing in it until checked. Making archives is ``vigil.ops.backup``,
restoring them ``vigil.ops.restore``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated

from alembic.script import ScriptDirectory
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.store.db import MIGRATIONS_DIR

FORMAT_NAME = "vigil-backup"
FORMAT_VERSION = 1
MANIFEST_MEMBER = "manifest.json"
DATABASE_MEMBER = "vigil.db"
CONFIG_MEMBER = "config.yaml"
TEMP_PREFIX = ".vigil-backup-"
CHUNK_BYTES = 1024 * 1024


class BackupError(Exception):
    """A backup could not be made or used; the message is one line naming the problem."""


class InvalidArchiveError(BackupError):
    """An archive failed verification (unreadable, truncated, altered, or not for this Vigil)."""


class MemberDigest(BaseModel):
    """Size and SHA-256 of one archive member, as the manifest records them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Manifest(BaseModel):
    """``manifest.json``: what an archive holds and what made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    vigil_version: str
    created_at: datetime
    schema_revision: str
    database_source: str
    config_source: str | None = None
    members: dict[str, MemberDigest]

    @property
    def has_config(self) -> bool:
        return CONFIG_MEMBER in self.members

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; raises `InvalidArchiveError` naming what is wrong with it."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidArchiveError(f"manifest.json is not valid JSON: {error}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise InvalidArchiveError("manifest.json does not describe a Vigil backup")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise InvalidArchiveError(
                f"unknown backup format version {version!r} (this Vigil reads version "
                f"{FORMAT_VERSION}; was the archive made by a newer Vigil?)"
            )
        try:
            manifest = cls.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidArchiveError(
                f"manifest.json is not valid: {where}: {first['msg']}"
            ) from None
        if manifest.created_at.tzinfo is None:
            raise InvalidArchiveError("manifest.json is not valid: created_at has no time zone")
        unknown = set(manifest.members) - {DATABASE_MEMBER, CONFIG_MEMBER}
        if DATABASE_MEMBER not in manifest.members or unknown:
            raise InvalidArchiveError(
                f"manifest.json is not valid: members must be {DATABASE_MEMBER} and optionally "
                f"{CONFIG_MEMBER}, not {sorted(manifest.members)}"
            )
        return manifest


# --- the database copy --------------------------------------------------------------------------


@functools.cache
def known_schema_revisions() -> tuple[str, ...]:
    """The schema revisions this Vigil's migrations know, oldest first (the last is head)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return tuple(reversed([revision.revision for revision in script.walk_revisions()]))


def check_schema_revision(revision: str) -> None:
    """Raise `InvalidArchiveError` unless this Vigil can migrate a DB at `revision` to head."""
    known = known_schema_revisions()
    if revision not in known:
        raise InvalidArchiveError(
            f"the database has schema revision {revision}, which this Vigil does not know "
            f"(its newest is {known[-1]}): the backup comes from a newer Vigil"
        )


def database_schema_revision(connection: sqlite3.Connection) -> str:
    """The Alembic revision a database is at; `BackupError` if it has none."""
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"cannot read the schema revision: {error}") from None
    if len(rows) != 1:
        raise BackupError(f"expected one schema revision, found {len(rows)}")
    return str(rows[0][0])


def check_database_file(path: Path) -> str:
    """Run ``PRAGMA integrity_check`` on the database at `path`; return its schema revision.

    Raises `InvalidArchiveError` when the file is not a sound SQLite database with a revision.
    """
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise InvalidArchiveError(f"cannot open the database copy: {error}") from None
    try:
        try:
            results = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            raise InvalidArchiveError(f"the database copy is damaged: {error}") from None
        if results != ["ok"]:
            raise InvalidArchiveError(
                f"the database copy fails PRAGMA integrity_check: {results[0]}"
                + (f" (and {len(results) - 1} more problem(s))" if len(results) > 1 else "")
            )
        try:
            return database_schema_revision(connection)
        except BackupError as error:
            raise InvalidArchiveError(
                f"the database copy is not a Vigil database: {error}"
            ) from None
    finally:
        connection.close()


# --- verifying --------------------------------------------------------------------------------


def digest_file(path: Path) -> MemberDigest:
    """Size and SHA-256 of the file at `path`."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            sha.update(chunk)
            size += len(chunk)
    return MemberDigest(size=size, sha256=sha.hexdigest())


def fsync_directory(directory: Path) -> None:
    """Make the names just created or replaced in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, destination: IO[bytes] | None) -> str:
    """Stream a member, optionally into `destination`; return its SHA-256."""
    source = tar.extractfile(info)
    if source is None:
        raise InvalidArchiveError(f"{info.name} is not a regular file")
    sha = hashlib.sha256()
    try:
        while chunk := source.read(CHUNK_BYTES):
            sha.update(chunk)
            if destination is not None:
                destination.write(chunk)
    except (tarfile.ReadError, EOFError) as error:
        raise InvalidArchiveError(
            f"archive is truncated or damaged: {error} in {info.name}"
        ) from None
    return sha.hexdigest()


def _open_archive(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:")
    except FileNotFoundError:
        raise InvalidArchiveError(f"{archive} does not exist") from None
    except (tarfile.TarError, OSError) as error:
        raise InvalidArchiveError(f"not a readable tar archive: {error}") from None


def verify_archive(archive: Path, *, extract_to: Path | None = None) -> Manifest:
    """Check an archive completely and return its manifest.

    Checks, in order: the tar is readable, it holds a manifest in a format this Vigil reads and
    exactly the members it lists, each with its recorded size and SHA-256, the database copy
    passes ``PRAGMA integrity_check``, and its schema revision is the manifest's and one this
    Vigil knows (no newer than head). Raises `InvalidArchiveError` naming the first problem.

    With `extract_to` (an existing directory) the members are left there, verified, under their
    member names; otherwise they go to a temporary directory beside the archive, then away.
    """
    if extract_to is None:
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=archive.parent) as scratch:
            return verify_archive(archive, extract_to=Path(scratch))
    with _open_archive(archive) as tar:
        members: list[tarfile.TarInfo] = []
        try:
            members.extend(tar)
        except (tarfile.TarError, EOFError) as error:
            # Reading a header fails where the previous member's data should end.
            where = f" in {members[-1].name}" if members else ""
            raise InvalidArchiveError(f"archive is truncated or damaged: {error}{where}") from None
        by_name: dict[str, tarfile.TarInfo] = {}
        for info in members:
            if info.name in by_name:
                raise InvalidArchiveError(f"archive holds {info.name} twice")
            if not info.isfile():
                raise InvalidArchiveError(f"archive member {info.name} is not a regular file")
            by_name[info.name] = info
        manifest_info = by_name.pop(MANIFEST_MEMBER, None)
        if manifest_info is None:
            raise InvalidArchiveError("archive has no manifest.json (not a Vigil backup?)")
        manifest_bytes = io.BytesIO()
        _read_member(tar, manifest_info, manifest_bytes)
        manifest = Manifest.from_json(manifest_bytes.getvalue())
        for name in by_name:
            if name not in manifest.members:
                raise InvalidArchiveError(f"archive member {name} is not in the manifest")
        for name, digest in manifest.members.items():
            member = by_name.get(name)
            if member is None:
                raise InvalidArchiveError(f"archive is truncated or incomplete: {name} is missing")
            if member.size != digest.size:
                raise InvalidArchiveError(
                    f"size mismatch for {name}: {member.size} bytes, the manifest says "
                    f"{digest.size}"
                )
            with (extract_to / name).open("wb") as destination:
                sha256 = _read_member(tar, member, destination)
                destination.flush()
                os.fsync(destination.fileno())
            if sha256 != digest.sha256:
                raise InvalidArchiveError(
                    f"checksum mismatch for {name}: the archive is damaged or was altered"
                )
    revision = check_database_file(extract_to / DATABASE_MEMBER)
    if revision != manifest.schema_revision:
        raise InvalidArchiveError(
            f"the database copy has schema revision {revision}, "
            f"the manifest says {manifest.schema_revision}"
        )
    check_schema_revision(revision)
    return manifest
