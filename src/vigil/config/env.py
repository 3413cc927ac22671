"""Environment overrides: ``VIGIL_<SECTION>__<KEY>=value`` applied to the YAML data, then validated.

Rules:

- The name after ``VIGIL_`` is a key path, ``__`` between levels, case-insensitive:
  ``VIGIL_DATA_DIR``, ``VIGIL_RECORDING__SEGMENT_SECONDS``, ``VIGIL_LOG__LEVEL``.
- Streams are addressed by name: ``VIGIL_STREAMS__<NAME>__<KEY>``. The name matches ignoring case,
  with ``_`` matching ``-`` (shells cannot export names containing ``-``). Overrides change
  existing streams; they never add one.
- Values are read as one plain YAML scalar: ``10`` is an int, ``true`` a bool, ``null`` or an
  empty value is null, anything else a string (``#``, ``:`` and quotes need no escaping).
- Only keys holding a value can be set, not whole sections or the stream list; setting a key in
  a section the file leaves out (``VIGIL_SIMULATOR__CAMERAS=8``) creates the section.
- A name that does not lead to a key is an error naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from yaml.nodes import ScalarNode

from vigil.config.errors import ConfigError, ConfigIssue, unknown_key_message
from vigil.config.locations import (
    Location,
    field_names,
    format_location,
    list_item_model,
    model_in,
)

ENV_PREFIX = "VIGIL_"


@dataclass(frozen=True, slots=True)
class EnvOverrides:
    """The data with overrides applied, and which variable set which location."""

    data: dict[str, Any]
    sources: dict[Location, str]


def apply_env_overrides(
    data: Mapping[str, Any], env: Mapping[str, str], *, root: type[BaseModel]
) -> EnvOverrides:
    """Apply every ``VIGIL_*`` variable of `env` to a copy of `data`, or raise ``ConfigError``.

    Containers on the path of an override are copied, never changed in place: YAML aliases can
    make one dict appear in several places.
    """
    result = dict(data)
    sources: dict[Location, str] = {}
    issues: list[ConfigIssue] = []
    for variable in sorted(env):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        try:
            location = _apply(result, variable, env[variable], root)
        except _OverrideError as exc:
            issues.append(ConfigIssue(exc.location, exc.message, None, f"env {variable}"))
            continue
        if location in sources:
            message = f"also set by {sources[location]}; set each key once"
            issues.append(ConfigIssue(format_location(location), message, None, f"env {variable}"))
        sources[location] = variable
    if issues:
        raise ConfigError(issues)
    return EnvOverrides(data=result, sources=sources)


def parse_scalar(text: str) -> object:
    """Read `text` as one plain YAML scalar (int, float, bool, null, date or string)."""
    loader = yaml.SafeLoader("")
    try:
        # Resolved as a plain (unquoted) scalar: no flow syntax, aliases or comments apply.
        tag = loader.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        return loader.construct_object(ScalarNode(tag, text))
    except (ValueError, yaml.YAMLError):  # e.g. a date-like 2024-13-45: keep the text
        return text
    finally:
        loader.dispose()


class _OverrideError(Exception):
    def __init__(self, location: Location, message: str) -> None:
        super().__init__(message)
        self.location = format_location(location)
        self.message = message


def _apply(data: dict[str, Any], variable: str, text: str, root: type[BaseModel]) -> Location:
    """Set the value `variable` names inside `data`; return the location it set."""
    segments = variable[len(ENV_PREFIX) :].split("__")
    if not all(segments):
        message = "malformed name; use VIGIL_<SECTION>__<KEY>, e.g. VIGIL_LOG__LEVEL"
        raise _OverrideError((), message)
    model, container = root, data
    location: Location = ()
    index = 0
    while True:
        key = segments[index].lower()
        if key not in model.model_fields:
            raise _OverrideError(location, unknown_key_message(key, field_names(model)))
        annotation = model.model_fields[key].annotation
        section, item_model = model_in(annotation), list_item_model(annotation)
        rest = segments[index + 1 :]
        if item_model is not None:
            if len(rest) < 2:
                raise _OverrideError(
                    (*location, key), "name a stream and a key: VIGIL_STREAMS__<NAME>__<KEY>"
                )
            position, container = _find_stream(container, key, rest[0], location)
            model, location, index = item_model, (*location, key, position), index + 2
        elif not rest:
            if section is not None:
                raise _OverrideError(
                    (*location, key), f"is a section; set its keys with {variable}__<KEY>"
                )
            container[key] = parse_scalar(text)
            return (*location, key)
        elif section is not None:
            child = container.get(key)
            if child is not None and not isinstance(child, dict):
                raise _OverrideError((*location, key), "is not a mapping in the file")
            copied: dict[str, Any] = dict(child or {})
            container[key] = copied
            container = copied
            model, location, index = section, (*location, key), index + 1
        else:
            raise _OverrideError((*location, key), "holds a value and has no keys below it")


def _find_stream(
    container: dict[str, Any], key: str, wanted: str, location: Location
) -> tuple[int, dict[str, Any]]:
    """Find the stream named `wanted` in ``container[key]``; return its index and a copy."""
    items = container.get(key)
    streams = list(items) if isinstance(items, list) else []
    names = [item.get("name") if isinstance(item, dict) else None for item in streams]
    matches = [i for i, name in enumerate(names) if _same_name(name, wanted)]
    if len(matches) != 1:
        known = ", ".join(str(name) for name in names if isinstance(name, str)) or "none"
        problem = "several streams match" if matches else "no stream matches"
        raise _OverrideError(
            (*location, key),
            f"{problem} the name '{wanted}' (environment variables change existing streams, "
            f"they do not add streams); streams: {known}",
        )
    position = matches[0]
    stream = dict(streams[position])
    streams[position] = stream
    container[key] = streams
    return position, stream


def _same_name(name: object, wanted: str) -> bool:
    if not isinstance(name, str):
        return False
    return name.casefold().replace("-", "_") == wanted.casefold().replace("-", "_")
