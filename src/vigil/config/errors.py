"""Configuration errors: located issues, their one-line rendering, and pydantic's translation.

Messages are built from the error type and pydantic's message, never from the rejected input
(which may be an RTSP URL with a password); every issue is passed through ``redact_text`` too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from vigil.config.base import SUB_LOCATION_KEY
from vigil.config.locations import Location, field_names, format_location, model_at
from vigil.observability.redact import redact_text

_PREFIXES = ("Value error, ", "Assertion failed, ")
# Errors about a number's size, where showing the (numeric, so not secret) input helps.
_NUMERIC_BOUNDS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_from_float"}
)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One thing wrong with a configuration, and where.

    `location` is a key path such as ``streams[1].source`` (``""``: the whole file), `line` the
    1-based line in `source_name` (a file name, ``<string>`` or ``env VIGIL_...``) when known.
    """

    location: str
    message: str
    line: int | None = None
    source_name: str = "<string>"

    def __post_init__(self) -> None:
        # A last line of defence: whatever built the message, no URL password leaves here.
        object.__setattr__(self, "message", redact_text(self.message))
        object.__setattr__(self, "location", redact_text(self.location))

    def __str__(self) -> str:
        where = self.source_name if self.line is None else f"{self.source_name}:{self.line}"
        return ": ".join(part for part in (where, self.location, self.message) if part)


class ConfigError(Exception):
    """A configuration that cannot be used; ``str()`` is one ``FILE:LINE: LOCATION: MESSAGE``
    line per issue, ready to print."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = sorted(
            issues, key=lambda issue: (issue.line is None, issue.line or 0)
        )
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @classmethod
    def single(cls, location: str, message: str, source_name: str = "request") -> ConfigError:
        """An error of one issue that no file line belongs to (API requests, reloads)."""
        return cls([ConfigIssue(location, message, None, source_name)])

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue]]]:
        # The default would rebuild from the rendered text, not from the issues.
        return (type(self), (self.issues,))


def issues_from_validation_error(
    error: ValidationError,
    *,
    root: type[BaseModel],
    source_name: str,
    lines: Mapping[Location, int],
    overrides: Mapping[Location, str],
) -> list[ConfigIssue]:
    """Translate pydantic's errors for `root` into located issues.

    `lines` maps key paths to lines in the file; `overrides` maps key paths to the environment
    variable that set them, whose name then replaces file and line.
    """
    issues = []
    for details in error.errors(include_url=False):
        location = _location(details)
        variable = _lookup(overrides, location)
        issues.append(
            ConfigIssue(
                location=format_location(location),
                message=_message(details, location, root),
                line=None if variable else _lookup(lines, location),
                source_name=f"env {variable}" if variable else source_name,
            )
        )
    return issues


def describe_kind(value: object) -> str:
    """Name a YAML value's kind for a message without showing the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def unknown_key_message(key: str, allowed: list[str]) -> str:
    """``unknown key 'x' (did you mean 'y'?); allowed keys: ...``."""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; allowed keys: {', '.join(allowed)}"


def _location(details: ErrorDetails) -> Location:
    context = details.get("ctx") or {}
    return tuple(details["loc"]) + tuple(context.get(SUB_LOCATION_KEY, ()))


def _lookup(table: Mapping[Location, _T], location: Location) -> _T | None:
    """The entry for `location` or, failing that, for its nearest ancestor."""
    for end in range(len(location), -1, -1):
        if location[:end] in table:
            return table[location[:end]]
    return None


def _message(details: ErrorDetails, location: Location, root: type[BaseModel]) -> str:
    kind, value = details["type"], details.get("input")
    if kind == "extra_forbidden":
        model = model_at(root, location[:-1])
        return unknown_key_message(str(location[-1]), field_names(model) if model else [])
    if kind == "missing":
        return f"required key '{location[-1]}' is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys, found {describe_kind(value)}"
    if kind == "list_type":
        return f"must be a list, found {describe_kind(value)}"
    message = details["msg"]
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    if kind == "string_type" and isinstance(value, int | float):
        message += "; write the value in quotes to make it text"
    if kind in _NUMERIC_BOUNDS and isinstance(value, int | float):
        message += f" (got {value!r})"
    return message


M = TypeVar("M", bound=BaseModel)


def validate_as(model: type[M], data: object, *, source_name: str = "request") -> M:
    """Validate `data` that did not come from a file (an API request, a merge) as `model`;
    ConfigError naming each bad key otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        issues = issues_from_validation_error(
            error, root=model, source_name=source_name, lines={}, overrides={}
        )
        raise ConfigError(issues) from None
