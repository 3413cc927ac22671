"""Bearer tokens with roles. Without any token, access is open but the API listens on loopback
only (see `server.py`); once one token exists, every request needs one — there is no
localhost bypass."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vigil.api.errors import ApiError
from vigil.store.tokens import Role, TokenStore, hash_token

# Tokens created or revoked with `vigil tokens` while Vigil runs take effect within this time.
CACHE_SECONDS = 1.0

TokenMap = dict[str, tuple[str, Role]]  # token hash -> (name, role)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role (`open` when no token exists at all)."""

    name: str
    role: Role


OPEN_ACCESS = Principal(name="open-access", role=Role.ADMIN)


class Authenticator:
    """Knows every valid token: those in the configuration file and those in the database."""

    def __init__(
        self,
        configured: dict[str, tuple[str, Role]],
        store: TokenStore | None,
        run: Callable[
            [Callable[[], dict[str, tuple[str, Role]]]], Awaitable[dict[str, tuple[str, Role]]]
        ],
    ) -> None:
        self._configured = configured
        self._store = store
        self._run = run
        self._cached: dict[str, tuple[str, Role]] = {}
        self._cached_at = float("-inf")
        self._lock = asyncio.Lock()

    async def tokens(self) -> dict[str, tuple[str, Role]]:
        """Hash → (name, role) of every valid token, refreshed at most every second."""
        if time.monotonic() - self._cached_at < CACHE_SECONDS:
            return self._cached
        async with self._lock:
            if time.monotonic() - self._cached_at >= CACHE_SECONDS:
                stored = await self._run(self._store.active) if self._store else {}
                self._cached = {**stored, **self._configured}
                self._cached_at = time.monotonic()
        return self._cached

    async def identify(self, token: str | None) -> Principal:
        """The caller for `token` (the raw bearer token), or an `ApiError` 401."""
        known = await self.tokens()
        if not known:
            return OPEN_ACCESS
        if not token:
            raise ApiError(401, "a bearer token is required (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        digest = hash_token(token)
        for candidate, (name, role) in known.items():
            if hmac.compare_digest(candidate, digest):
                return Principal(name=name, role=role)
        raise ApiError(401, "unknown or revoked token",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip


_bearer = HTTPBearer(auto_error=False, description="A token from `vigil tokens create`.")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must hold at least `role` (else 401/403)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        auth: Authenticator = request.app.state.auth
        principal = await auth.identify(credentials.credentials if credentials else None)
        if not principal.role.allows(role):
            raise ApiError(403, f"token '{principal.name}' ({principal.role}) may not do this; "
                                f"it needs the {role} role")  # fmt: skip
        request.state.principal = principal
        return principal

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
