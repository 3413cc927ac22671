"""A volume's identity file: a UUID written on first use, so a disk is recognised wherever it is
mounted next (another path, another machine) and an empty mount point is never mistaken for it."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vigil.store.timestamps import utc_now

IDENTITY_FILE = ".vigil-volume"


class VolumeIdentityError(ValueError):
    """The identity file exists but cannot be read or is not one of ours."""


@dataclass(frozen=True, slots=True)
class VolumeIdentity:
    """Who a volume is: its id, and when it was first used."""

    id: str
    created: datetime


def identity_path(root: Path) -> Path:
    return root / IDENTITY_FILE


def read_identity(root: Path) -> VolumeIdentity | None:
    """The identity of the volume at `root`; None if it has none (yet).

    Raises `VolumeIdentityError` for a file that is there but unreadable or malformed, and
    `OSError` when `root` itself cannot be read (a failing disk)."""
    try:
        text = identity_path(root).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise VolumeIdentityError(f"{identity_path(root)} is not text") from exc
    try:
        data = json.loads(text)
        return VolumeIdentity(
            id=str(uuid.UUID(str(data["id"]))), created=datetime.fromisoformat(data["created"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VolumeIdentityError(f"{identity_path(root)} is not a Vigil volume identity") from exc


def create_identity(root: Path) -> VolumeIdentity:
    """Give the volume at `root` an identity (atomically: a crash leaves none or a whole one).
    An identity already there is kept and returned."""
    existing = read_identity(root)
    if existing is not None:
        return existing
    identity = VolumeIdentity(id=str(uuid.uuid4()), created=utc_now())
    text = json.dumps({"id": identity.id, "created": identity.created.isoformat()}) + "\n"
    temporary = root / f"{IDENTITY_FILE}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, identity_path(root))  # fails if another writer won the race
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    found = read_identity(root)
    assert found is not None
    return found
