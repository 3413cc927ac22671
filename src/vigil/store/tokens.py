"""API bearer tokens: created, listed and revoked here; only their SHA-256 is ever stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigil.store.db import Database
from vigil.store.models import ApiToken
from vigil.store.timestamps import from_us, to_us, utc_now

TOKEN_PREFIX = "vgl_"


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"  # read, snapshots, exports
    OPERATOR = "operator"  # + start/stop streams, recording on/off
    ADMIN = "admin"  # + configuration, creating and deleting streams

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenNameTakenError(ValueError):
    """A token of that name exists (revoked or not): names identify tokens in logs."""


class TokenNotFoundError(LookupError):
    """No active token has that name."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as listed (never the token itself)."""

    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class TokenStore:
    """The `api_tokens` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, role: Role) -> str:
        """Create a token called `name`; returns the token, which is shown only this once."""
        token = new_token()
        try:
            with self._db.begin() as session:
                session.add(ApiToken(name=name, role=role.value, token_hash=hash_token(token),
                                     created_at_us=to_us(utc_now())))  # fmt: skip
        except IntegrityError:
            raise TokenNameTakenError(f"a token named '{name}' already exists") from None
        return token

    def revoke(self, name: str) -> None:
        """Revoke the active token called `name`; it stops working at once."""
        with self._db.begin() as session:
            row = session.scalar(
                select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at_us.is_(None))
            )
            if row is None:
                raise TokenNotFoundError(f"no active token named '{name}'")
            row.revoked_at_us = to_us(utc_now())

    def list(self) -> list[TokenRow]:
        """Every token, active or revoked, oldest first."""
        with self._db.session() as session:
            rows = session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        return [
            TokenRow(
                name=row.name,
                role=Role(row.role),
                created_at=from_us(row.created_at_us),
                revoked_at=None if row.revoked_at_us is None else from_us(row.revoked_at_us),
            )
            for row in rows
        ]

    def active(self) -> dict[str, tuple[str, Role]]:
        """Hash → (name, role) of every token not revoked."""
        with self._db.session() as session:
            rows = session.execute(
                select(ApiToken.token_hash, ApiToken.name, ApiToken.role).where(
                    ApiToken.revoked_at_us.is_(None)
                )
            ).all()
        return {token_hash: (name, Role(role)) for token_hash, name, role in rows}
