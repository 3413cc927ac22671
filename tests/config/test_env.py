"""Environment overrides: VIGIL_<SECTION>__<KEY> applied before validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.config import ConfigError, LogLevel, VigilConfig, load_config, load_config_text
from vigil.config.env import parse_scalar

FILE = """\
recording:
  segment_seconds: 60
streams:
  - name: gate
    source: rtsp://user:secret@192.0.2.10:554/stream1
  - name: front-door
    source: test://
"""


def load(env: dict[str, str], text: str = FILE) -> VigilConfig:
    return load_config_text(text, source_name="vigil.yaml", env=env)


def env_error(env: dict[str, str], text: str = FILE) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load(env, text)
    return raised.value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("0x10", 16),
        ("2.5", 2.5),
        ("true", True),
        ("False", False),
        ("null", None),
        ("", None),
        ("debug", "debug"),
        ("/srv/vigil", "/srv/vigil"),
        ("rtsp://u:p#w@cam:554/x?a=1", "rtsp://u:p#w@cam:554/x?a=1"),
        ("a: b", "a: b"),
        ("[1, 2]", "[1, 2]"),
        ("*alias", "*alias"),
        ("'quoted'", "'quoted'"),
    ],
)
def test_values_are_plain_yaml_scalars(text: str, value: object) -> None:
    assert parse_scalar(text) == value
    assert type(parse_scalar(text)) is type(value)


def test_overrides_top_level_and_nested_keys() -> None:
    config = load(
        {
            "VIGIL_DATA_DIR": "/srv/vigil",
            "VIGIL_RECORDING__SEGMENT_SECONDS": "10",
            "vigil_log__level": "debug",
            "Vigil_Api__Listen": "0.0.0.0:9000",
            "PATH": "/usr/bin",
            "VIGILANT": "not ours",
        }
    )
    assert config.data_dir == Path("/srv/vigil")
    assert config.recording.segment_seconds == 10
    assert config.log.level is LogLevel.DEBUG
    assert config.api.listen == "0.0.0.0:9000"


def test_overrides_apply_to_an_empty_file_and_create_sections() -> None:
    config = load({"VIGIL_SIMULATOR__CAMERAS": "8", "VIGIL_DATABASE__PATH": "/db/v.db"}, "")
    assert config.simulator is not None
    assert (config.simulator.cameras, config.simulator.fps) == (8, 25)
    assert config.database.path == Path("/db/v.db")


def test_null_unsets_an_optional_key() -> None:
    config = load({"VIGIL_RECORDING__ROOT": ""}, "recording: {root: /rec}\n")
    assert config.recording.root is None


@pytest.mark.parametrize(
    ("variable", "stream_index"),
    [
        ("VIGIL_STREAMS__gate__SOURCE", 0),
        ("VIGIL_STREAMS__GATE__SOURCE", 0),
        ("VIGIL_STREAMS__FRONT_DOOR__SOURCE", 1),
        ("VIGIL_STREAMS__front-door__SOURCE", 1),
    ],
)
def test_streams_are_addressed_by_name(variable: str, stream_index: int) -> None:
    config = load({variable: "rtsp://other:pw@192.0.2.99/live"})
    assert config.streams[stream_index].source == "rtsp://other:pw@192.0.2.99/live"
    assert config.streams[1 - stream_index].source != "rtsp://other:pw@192.0.2.99/live"


def test_stream_override_parses_types() -> None:
    config = load(
        {"VIGIL_STREAMS__GATE__RECORD": "false", "VIGIL_STREAMS__GATE__SEGMENT_SECONDS": "30"}
    )
    assert config.streams[0].record is False
    assert config.streams[0].segment_seconds == 30


def test_overrides_do_not_change_the_yaml_data_shared_by_aliases() -> None:
    text = "recording: &r {segment_seconds: 60}\nx: *r\n"
    # 'x' is an unknown key; what matters is that the override did not leak into it.
    error = env_error({"VIGIL_RECORDING__SEGMENT_SECONDS": "10"}, text)
    assert [issue.location for issue in error.issues] == ["x"]


@pytest.mark.parametrize(
    ("variable", "location", "message"),
    [
        (
            "VIGIL_LOGG__LEVEL",
            "",
            "unknown key 'logg' (did you mean 'log'?); allowed keys: data_dir",
        ),
        (
            "VIGIL_LOG__LEVL",
            "log",
            "unknown key 'levl' (did you mean 'level'?); allowed keys: level, format",
        ),
        ("VIGIL_LOG_LEVEL", "", "unknown key 'log_level'"),
        ("VIGIL_RECORDING", "recording", "is a section; set its keys with VIGIL_RECORDING__<KEY>"),
        ("VIGIL_STREAMS", "streams", "name a stream and a key: VIGIL_STREAMS__<NAME>__<KEY>"),
        ("VIGIL_STREAMS__GATE", "streams", "name a stream and a key"),
        ("VIGIL_STREAMS__YARD__SOURCE", "streams", "no stream matches the name 'YARD'"),
        (
            "VIGIL_STREAMS__GATE__SORCE",
            "streams[0]",
            "unknown key 'sorce' (did you mean 'source'?)",
        ),
        ("VIGIL_DATA_DIR__X", "data_dir", "holds a value and has no keys below it"),
        ("VIGIL_LOG____LEVEL", "", "malformed name"),
        ("VIGIL_", "", "malformed name"),
    ],
)
def test_bad_variable_names_are_errors_naming_the_variable(
    variable: str, location: str, message: str
) -> None:
    (issue,) = env_error({variable: "1"}).issues
    assert issue.source_name == f"env {variable}"
    assert (issue.location, issue.line) == (location, None)
    assert message in issue.message
    assert str(issue).startswith(f"env {variable}: ")


def test_unknown_stream_lists_the_known_ones() -> None:
    (issue,) = env_error({"VIGIL_STREAMS__YARD__RECORD": "false"}).issues
    assert "they do not add streams); streams: gate, front-door" in issue.message


def test_invalid_override_value_is_reported_against_the_variable() -> None:
    error = env_error(
        {
            "VIGIL_RECORDING__SEGMENT_SECONDS": "abc",
            "VIGIL_STREAMS__GATE__SOURCE": "rtsp://a:secret@cam:x/",
        }
    )
    assert [str(issue) for issue in error.issues] == [
        "env VIGIL_RECORDING__SEGMENT_SECONDS: recording.segment_seconds: "
        "Input should be a valid integer, unable to parse string as an integer",
        "env VIGIL_STREAMS__GATE__SOURCE: streams[0].source: invalid port in the RTSP URL; "
        "it must be a number 1..65535 (percent-encode '/', '?' and '#' in a password)",
    ]
    assert "secret" not in str(error)


def test_renaming_a_stream_into_a_duplicate_blames_the_variable() -> None:
    (issue,) = env_error({"VIGIL_STREAMS__FRONT_DOOR__NAME": "GATE"}).issues
    assert (issue.source_name, issue.location) == (
        "env VIGIL_STREAMS__FRONT_DOOR__NAME",
        "streams[1].name",
    )


def test_two_variables_for_one_key_are_an_error() -> None:
    (issue,) = env_error({"VIGIL_LOG__LEVEL": "debug", "vigil_log__level": "info"}).issues
    assert "also set by VIGIL_LOG__LEVEL" in issue.message


def test_ambiguous_stream_name_is_an_error() -> None:
    text = "streams:\n  - {name: front-door, source: 'test://'}\n  - {name: front_door, source: 'test://'}\n"
    (issue,) = env_error({"VIGIL_STREAMS__FRONT_DOOR__RECORD": "false"}, text).issues
    assert "several streams match the name 'FRONT_DOOR'" in issue.message


def test_load_config_uses_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text("log: {level: info}\n")
    for name in [name for name in os.environ if name.upper().startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIL_LOG__LEVEL", "error")
    assert load_config(path).log.level is LogLevel.ERROR
    assert load_config(path, env={}).log.level is LogLevel.INFO
