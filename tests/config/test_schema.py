"""The built-in default config, the JSON Schema and the generated Markdown reference."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vigil.config import (
    DEFAULT_CONFIG_YAML,
    Codec,
    LogLevel,
    RtspSource,
    VigilConfig,
    default_config,
    json_schema,
    reference_markdown,
    resolve,
)
from vigil.config.locations import list_item_model, model_in

DOCS = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_default_config() -> None:
    config = default_config(env={})
    assert config.data_dir == Path("data")
    assert config.simulator is not None
    simulator = config.simulator
    assert (simulator.enabled, simulator.cameras, simulator.port) == (True, 4, 8654)
    assert (simulator.codec, simulator.width, simulator.height) == (Codec.H264, 1280, 720)
    assert (simulator.fps, simulator.bitrate_kbit) == (25, 2000)
    assert [s.name for s in config.streams] == ["cam1", "cam2", "cam3", "cam4"]
    assert [s.source for s in config.streams] == [
        f"rtsp://127.0.0.1:8654/cam{i}" for i in range(1, 5)
    ]
    assert all(s.record and s.enabled for s in config.streams)
    plans = resolve(config, base_dir=Path("/work")).streams
    assert plans[0].source == RtspSource("rtsp://127.0.0.1:8654/cam1")


def test_default_config_is_its_yaml() -> None:
    assert default_config(env={}) == VigilConfig.model_validate(yaml.safe_load(DEFAULT_CONFIG_YAML))


def test_default_config_takes_env_overrides() -> None:
    config = default_config(env={"VIGIL_LOG__LEVEL": "debug", "VIGIL_SIMULATOR__ENABLED": "false"})
    assert config.log.level is LogLevel.DEBUG
    assert config.simulator is not None and config.simulator.enabled is False


def test_json_schema() -> None:
    schema = json.loads(json.dumps(json_schema()))
    assert schema["$id"] == "urn:vigil:config"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Vigil configuration"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(VigilConfig.model_fields)
    stream = schema["$defs"]["StreamConfig"]
    assert stream["required"] == ["name", "source"]
    assert stream["properties"]["name"]["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    segment = schema["$defs"]["RecordingConfig"]["properties"]["segment_seconds"]
    assert (segment["minimum"], segment["maximum"], segment["default"]) == (2, 3600, 60)


def _all_fields() -> list[tuple[str, str]]:
    fields = [("", name) for name in VigilConfig.model_fields]
    for name, info in VigilConfig.model_fields.items():
        model = model_in(info.annotation) or list_item_model(info.annotation)
        if model is not None:
            fields += [(name, field) for field in model.model_fields]
    return fields


def test_reference_mentions_every_field_with_its_description() -> None:
    text = reference_markdown()
    for section, field in _all_fields():
        if section:
            assert f"## `{section}" in text
        assert f"| `{field}` |" in text, (section, field)
    assert "| `segment_seconds` | integer | `60` | 2..3600 |" in text
    assert "| `level` | string | `info` | one of `debug`, `info`, `warning`, `error` |" in text
    assert "| `name` | string | **required** |" in text
    assert "`zone-plate`" in text and "VIGIL_STREAMS__GATE__SOURCE" in text


def test_docs_configuration_is_up_to_date() -> None:
    # Regenerate with the command at the top of docs/CONFIGURATION.md.
    assert DOCS.read_text(encoding="utf-8") == reference_markdown()
