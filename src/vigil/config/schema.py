"""Generated documentation of the configuration: JSON Schema and the Markdown reference.

``docs/CONFIGURATION.md`` is ``reference_markdown()``'s output; a test keeps the two equal.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from vigil.config.defaults import DEFAULT_CONFIG_YAML
from vigil.config.env import ENV_PREFIX
from vigil.config.locations import dict_value_model, list_item_model, model_in
from vigil.config.root import VigilConfig
from vigil.config.sources import FILE_PARAMETERS, TEST_PARAMETERS, TEST_PATTERNS, V4L2_PARAMETERS

SCHEMA_ID = "urn:vigil:config"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = (
    "python -c 'from vigil.config.schema import reference_markdown as r; "
    'print(r(), end="")\' > docs/CONFIGURATION.md'
)

MINIMAL_EXAMPLE = """\
recording:
  root: ./data/recordings
  segment_seconds: 60
streams:
  - name: gate
    source: rtsp://user:secret@192.0.2.10:554/stream1
    record: true
"""


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the configuration file, for editors and validators."""
    schema = VigilConfig.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema, "title": "Vigil configuration"}


def reference_markdown() -> str:
    """The configuration reference in Markdown: one table per section, sources, overrides."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the models in src/vigil/config; regenerate with: {REGENERATE} -->",
        "",
        "Vigil reads one YAML file (`vigil run -c FILE`; check it with `vigil config check "
        "FILE`). Every key is optional except a stream's `name` and `source`; an empty file is "
        "valid. Unknown keys, duplicate keys and out-of-range values are errors reported as "
        "`FILE:LINE: LOCATION: MESSAGE`. The JSON Schema is printed by `vigil config schema`.",
        "",
        "Minimal example:",
        "",
        "```yaml",
        MINIMAL_EXAMPLE.rstrip("\n"),
        "```",
        "",
        "Relative paths (`data_dir`, `recording.root`, `database.path`, `simulator.file`, "
        "`file:` sources) are relative to the directory of the config file (of the current "
        "directory for the built-in default); `~` is expanded to the home directory.",
        "",
    ]
    out += _model_section("Top level", VigilConfig)
    out += _subsections("", VigilConfig)
    out += _sources_section() + _env_section() + _default_section()
    return "\n".join(out).rstrip("\n") + "\n"


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """(kind, model) for a field holding a section, a list of them or a map of them."""
    if (item := list_item_model(annotation)) is not None:
        return ("list", item)
    if (value := dict_value_model(annotation)) is not None:
        return ("map", value)
    if (section := model_in(annotation)) is not None:
        return ("section", section)
    return None


def _subsections(prefix: str, model: type[BaseModel]) -> list[str]:
    """A table for every section below `model`, depth first, titled by its dotted path."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        nested = _nested(info.annotation)
        if nested is None:
            continue
        kind, inner = nested
        path = f"{prefix}{name}" + {"list": "[]", "map": ".<name>", "section": ""}[kind]
        suffix = {"list": " (each entry)", "map": " (each entry)", "section": ""}[kind]
        out += _model_section(f"`{path}`{suffix}", inner)
        out += _subsections(path + ".", inner)
    return out


def _model_section(title: str, model: type[BaseModel]) -> list[str]:
    summary = (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    lines = [f"## {title}", "", summary, ""]
    lines += ["| Key | Type | Default | Bounds | Description |", "|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        nested = _nested(info.annotation)
        if nested is not None:
            lines.append(f"| `{name}` | {nested[0]} | | | {_cell(info.description)} See below. |")
            continue
        row = (
            f"`{name}`",
            _type_name(info.annotation),
            _default(info),
            _bounds(info),
            _cell(info.description),
        )
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _type_name(annotation: Any) -> str:
    if list_item_model(annotation) is not None:
        return "list (entries below)"
    if get_origin(annotation) is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if get_origin(annotation) is Literal:
        return "string"
    if get_origin(annotation) in (Union, types.UnionType):
        names = [_type_name(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(names) + " or null"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "string"
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "number"
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, SecretStr):
            return "string (secret)"
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    return f"`{value}`"


def _bounds(info: FieldInfo) -> str:
    limits: dict[str, object] = {}
    kinds = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)
    for item in info.metadata:
        for kind in kinds:
            if isinstance(item, kind):
                limits[kind.__name__] = getattr(item, kind.__name__.lower())
    parts = []
    if "Ge" in limits and "Le" in limits:
        parts.append(f"{limits['Ge']}..{limits['Le']}")
    else:
        symbols = {"Ge": "≥", "Gt": ">", "Le": "≤", "Lt": "<"}
        parts += [f"{symbols[kind]} {value}" for kind, value in limits.items()]
    enum_type = next(
        (arg for arg in (info.annotation, *get_args(info.annotation)) if _is_enum(arg)), None
    )
    if enum_type is not None:
        parts.append("one of " + ", ".join(f"`{member.value}`" for member in enum_type))
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "pattern" in extra:
        parts.append(f"pattern `{extra['pattern']}`")
    return _cell("; ".join(parts))


def _is_enum(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, enum.Enum)


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _parameter_table(parameters: Mapping[str, str]) -> list[str]:
    rows = ["| Parameter | Meaning |", "|---|---|"]
    rows += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in parameters.items()]
    return [*rows, ""]


def _sources_section() -> list[str]:
    lines = [
        "## Sources",
        "",
        "A stream's `source` is a URL. Unknown query parameters are errors, except on RTSP "
        "URLs, whose query string belongs to the camera and is passed through.",
        "",
        "- `rtsp://[user:password@]host[:port]/path` and `rtsps://...` (RTSP over TLS): pull "
        "from a camera; `transport` chooses tcp, udp or auto. Percent-encode `/`, `?`, `#` "
        "and `@` in a password. Passwords are shown as `***` in logs, errors and the API.",
        "- `file:///absolute/path.mp4` or `file:relative/path.mp4` (relative to the config "
        "file's directory): a video file, looped.",
        "",
        *_parameter_table(FILE_PARAMETERS),
        "- `test://[pattern]?param=value&...`: synthetic video, e.g. "
        "`test://ball?codec=h265&size=640x480&fps=15`. Patterns (GStreamer videotestsrc): "
        + ", ".join(f"`{pattern}`" for pattern in TEST_PATTERNS)
        + "; default `smpte`.",
        "",
        *_parameter_table(TEST_PARAMETERS),
        "- `v4l2:///dev/video0`: a local capture device.",
        "",
        *_parameter_table(V4L2_PARAMETERS),
    ]
    return lines


def _env_section() -> list[str]:
    return [
        "## Environment overrides",
        "",
        f"Variables named `{ENV_PREFIX}<KEY>` override the file before it is validated:",
        "",
        "- `__` (double underscore) separates levels; names are case-insensitive: "
        "`VIGIL_DATA_DIR=/srv/vigil`, `VIGIL_RECORDING__SEGMENT_SECONDS=10`, "
        "`VIGIL_LOG__LEVEL=debug`.",
        "- Streams are addressed by name: `VIGIL_STREAMS__GATE__SOURCE=rtsp://...`; the name "
        "matches ignoring case, with `_` matching `-`. Overrides change existing streams only.",
        "- Values are read as one plain YAML scalar: `10` is a number, `true` a boolean, an "
        "empty value or `null` is null (unsetting an optional key such as `database.path`); "
        "anything else is a string, with no quoting needed.",
        "- Only keys holding a value can be set. Setting a key of a section the file leaves out "
        "creates it (`VIGIL_SIMULATOR__CAMERAS=8` turns on the simulator).",
        "- A variable that names no key is an error naming the variable.",
        "",
    ]


def _default_section() -> list[str]:
    return [
        "## Built-in default",
        "",
        "Without `-c`, `vigil run` uses this configuration:",
        "",
        "```yaml",
        DEFAULT_CONFIG_YAML.rstrip("\n"),
        "```",
        "",
    ]
