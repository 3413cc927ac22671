"""Loading a configuration: YAML file or text, environment overrides, validation, located errors.

Paths are kept as written (relative ones stay relative): loading never touches the disk beyond
reading the one file, and ``vigil.config.resolve.resolve(config, base_dir=...)`` makes them
absolute against the config file's directory (``config_base_dir(path)``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from vigil.config.env import apply_env_overrides
from vigil.config.errors import (
    ConfigError,
    ConfigIssue,
    describe_kind,
    issues_from_validation_error,
)
from vigil.config.root import VigilConfig
from vigil.config.yamltext import parse_yaml


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> VigilConfig:
    """Read, override from `env` (None: ``os.environ``) and validate the config file at `path`.

    Raises ``ConfigError`` for anything wrong, including an unreadable file; its ``str()`` is
    one ``FILE:LINE: LOCATION: MESSAGE`` line per issue.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        issue = ConfigIssue("", f"cannot read the file: {reason}", None, str(path))
        raise ConfigError([issue]) from None
    return load_config_text(text, source_name=str(path), env=env)


def load_config_text(
    text: str, *, source_name: str = "<string>", env: Mapping[str, str] | None = None
) -> VigilConfig:
    """Parse and validate configuration YAML; `source_name` names it in issues.

    An empty text is a valid configuration (every default). `env` as for ``load_config``.
    """
    document = parse_yaml(text, source_name=source_name)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigIssue(
                    "",
                    f"the file must be a mapping of sections (data_dir, recording, streams, ...), "
                    f"found {describe_kind(data)}",
                    document.lines.get(()),
                    source_name,
                )
            ]
        )
    overrides = apply_env_overrides(data, os.environ if env is None else env, root=VigilConfig)
    try:
        return VigilConfig.model_validate(overrides.data)
    except ValidationError as exc:
        issues = issues_from_validation_error(
            exc,
            root=VigilConfig,
            source_name=source_name,
            lines=document.lines,
            overrides=overrides.sources,
        )
        raise ConfigError(issues) from None


def config_base_dir(path: Path) -> Path:
    """The directory relative paths in the config file at `path` are relative to."""
    return Path(os.path.abspath(path)).parent
