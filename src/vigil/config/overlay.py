"""The file is the base, the API writes an overlay: the merge rule, in one pure function.

- A stream changed or added through the API is stored whole (its entry as it would be written
  in the file) and wins over the file's entry of the same name, until it is reset.
- A stream of the file deleted through the API is stored as a tombstone (no entry).
- Everything else (every other section) comes from the file alone.
- Order: the file's streams in file order, then streams added through the API in the order
  they were added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vigil.config.errors import validate_as
from vigil.config.root import VigilConfig


class Origin(StrEnum):
    """Where a stream's effective entry comes from."""

    FILE = "file"  # as written in the file
    API = "api"  # added through the API
    FILE_CHANGED_BY_API = "file+api"  # in the file, changed through the API


@dataclass(frozen=True)
class OverlayEntry:
    """One stream as the API left it: its whole entry, or None for a deleted file stream."""

    name: str
    entry: dict[str, Any] | None


@dataclass(frozen=True)
class Merged:
    """The effective configuration, where each stream came from, and what the API deleted."""

    config: VigilConfig
    origins: dict[str, Origin]
    deleted: tuple[str, ...]


def merge(file_config: VigilConfig, overlay: Mapping[str, OverlayEntry]) -> Merged:
    """Apply `overlay` (keyed by the name folded to lower case) to the file's configuration.

    Raises ConfigError if the result is invalid (e.g. an overlay entry no longer valid
    against a changed file), naming the stream.
    """
    data = file_config.model_dump(mode="json", exclude_unset=False, by_alias=True)
    streams: list[dict[str, Any]] = []
    origins: dict[str, Origin] = {}
    deleted: list[str] = []
    seen: set[str] = set()
    for stream in file_config.streams:
        key = stream.name.casefold()
        seen.add(key)
        if key not in overlay:
            streams.append(stream.model_dump(mode="json", exclude_unset=True))
            origins[stream.name] = Origin.FILE
        elif (changed := overlay[key].entry) is not None:
            streams.append(changed)
            origins[str(changed["name"])] = Origin.FILE_CHANGED_BY_API
        else:
            deleted.append(stream.name)
    for key, item in overlay.items():
        if key not in seen and item.entry is not None:
            streams.append(item.entry)
            origins[str(item.entry["name"])] = Origin.API
    data["streams"] = streams
    config = validate_as(VigilConfig, data, source_name="API changes")
    return Merged(config=config, origins=origins, deleted=tuple(deleted))
