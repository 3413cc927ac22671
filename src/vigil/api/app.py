"""The FastAPI application: routers, error shape, auth, CORS, OpenAPI."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from vigil.api import errors
from vigil.api.auth import Authenticator
from vigil.api.routes import config, events, recordings, snapshots, streams, system
from vigil.api.services import ApiServices
from vigil.store.tokens import Role

API_PREFIX = "/api/v1"


def create_api(
    services: ApiServices,
    *,
    configured_tokens: dict[str, tuple[str, Role]] | None = None,
    cors_origins: list[str] | None = None,
) -> FastAPI:
    """The HTTP API over `services`; tokens from the file are given as hash → (name, role)."""
    app = FastAPI(
        title="Vigil",
        version=services.version,
        summary="Record, re-serve and watch many cameras.",
        description="REST API of Vigil. Every route under /api/v1 takes a bearer token "
        "(`vigil tokens create`) unless no token exists at all, in which case Vigil listens "
        "on loopback only.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.auth = Authenticator(configured_tokens or {}, services.tokens, services.run)
    errors.install(app)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Link", "ETag"],
        )
    app.include_router(system.probes)
    app.include_router(system.router, prefix=API_PREFIX)
    app.include_router(streams.router, prefix=API_PREFIX)
    app.include_router(config.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(recordings.router, prefix=API_PREFIX)
    app.include_router(snapshots.router, prefix=API_PREFIX)
    return app
