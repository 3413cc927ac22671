"""The configuration: what runs (file + API changes, secrets masked), validation, replacing the
streams, and reloading the file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from vigil.api.auth import Admin
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.api.services import ApiServices
from vigil.config.diff import ChangePlan
from vigil.config.errors import ConfigError, validate_as
from vigil.config.root import VigilConfig
from vigil.streams.desired import DesiredState

router = APIRouter(prefix="/config", tags=["config"], responses=ERROR_RESPONSES)


class Problem(BaseModel):
    """One thing wrong, and where."""

    location: str
    message: str


class EffectiveConfig(BaseModel):
    """The configuration Vigil runs, with stream sources' passwords and token hashes masked."""

    config: dict[str, Any]
    origins: dict[str, str] = Field(description="Per stream: file, api or file+api.")
    deleted: list[str] = Field(description="Streams of the file deleted through the API.")
    file: str | None = Field(description="The configuration file (None: built-in default).")
    overlay_problem: str | None = Field(
        description="Why the API's stream changes could not be applied at start-up, if so."
    )


class Validation(BaseModel):
    """Whether a configuration document is valid, and what is wrong with it."""

    valid: bool
    problems: list[Problem]


class Applied(BaseModel):
    """What a change did."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: list[str]
    needs_restart: list[str] = Field(
        description="Sections that differ but take effect only when Vigil restarts."
    )


def _desired(services: ApiServices) -> DesiredState:
    if services.desired is None:
        raise ApiError(503, "configuration is not available yet")
    return services.desired


def _masked(config: VigilConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    for entry, stream in zip(data.get("streams", []), config.streams, strict=True):
        entry["source"] = stream.redacted_source()
    for token in data.get("api", {}).get("tokens", []):
        token["sha256"] = "***"
    return data


def _problems(error: ConfigError) -> list[Problem]:
    return [Problem(location=i.location, message=i.message) for i in error.issues]


def _applied(plan: ChangePlan) -> Applied:
    return Applied(
        added=[p.name for p in plan.added], removed=list(plan.removed),
        changed=[p.name for p in plan.changed], unchanged=list(plan.unchanged),
        needs_restart=list(plan.needs_restart),
    )  # fmt: skip


def _parse(document: dict[str, Any]) -> VigilConfig:
    return validate_as(VigilConfig, document)


def _invalid(error: ConfigError) -> ApiError:
    problems = _problems(error)
    message = "; ".join(f"{p.location or 'config'}: {p.message}" for p in problems)
    return ApiError(422, message, details=[p.model_dump() for p in problems])


@router.get("", response_model=EffectiveConfig, summary="The running configuration (admin)")
async def get_config(services: Services, _caller: Admin) -> EffectiveConfig:
    desired = _desired(services)
    return EffectiveConfig(
        config=_masked(desired.effective),
        origins={s.config.name: s.origin.value for s in desired.streams()},
        deleted=list(desired.deleted),
        file=str(desired.config_path) if desired.config_path else None,
        overlay_problem=desired.overlay_problem,
    )


@router.post(
    "/validate", response_model=Validation, summary="Check a configuration document (admin)"
)
async def validate_config(document: dict[str, Any], _caller: Admin) -> Validation:
    """The document is the YAML file's content as JSON; nothing is applied or stored."""
    try:
        _parse(document)
    except ConfigError as error:
        return Validation(valid=False, problems=_problems(error))
    return Validation(valid=True, problems=[])


@router.put("", response_model=Applied, summary="Replace the streams and apply (admin)")
async def put_config(document: dict[str, Any], services: Services, _caller: Admin) -> Applied:
    """Validate the document, make its `streams` the configured streams (stored in the
    database, layered over the file: they survive restarts) and apply the difference.
    Other sections can only be changed in the file: a document that changes them is refused
    with 409, naming them. Sources sent back masked as GET shows them keep their password."""
    desired = _desired(services)
    try:
        wanted = _parse(document)
    except ConfigError as error:
        raise _invalid(error) from None
    running = desired.effective.model_dump(mode="json", exclude={"streams"})
    other = wanted.model_dump(mode="json", exclude={"streams"})
    running.get("api", {}).pop("tokens", None)
    other.get("api", {}).pop("tokens", None)
    differing = sorted(key for key in running if running[key] != other.get(key))
    if differing:
        raise ApiError(409, "only streams can be changed through the API; change "
                            f"{', '.join(differing)} in the configuration file")  # fmt: skip
    streams = [s.model_dump(mode="json", exclude_unset=True) | {"source": s.source}
               for s in wanted.streams]  # fmt: skip
    try:
        plan = await desired.replace_streams(streams)
    except ConfigError as error:
        raise _invalid(error) from None
    return _applied(plan)


@router.post("/reload", response_model=Applied, summary="Read the file again and apply (admin)")
async def reload_config(services: Services, _caller: Admin) -> Applied:
    """An invalid file is refused (422, naming each problem) and the running configuration
    stays; the same happens by itself whenever the file changes."""
    desired = _desired(services)
    if desired.config_path is None:
        raise ApiError(409, "Vigil runs the built-in default configuration: no file to reload")
    try:
        plan = await desired.reload("reload")
    except ConfigError as error:
        raise _invalid(error) from None
    return _applied(plan)
