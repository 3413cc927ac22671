"""The configuration models on their own: defaults, bounds, validators, secrets in repr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vigil.config import (
    ApiConfig,
    Codec,
    DatabaseConfig,
    LogConfig,
    LogFormat,
    LogLevel,
    RecordingConfig,
    SimulatorConfig,
    StreamConfig,
    Transport,
    VigilConfig,
)

SECRET_URL = "rtsp://admin:secret@192.0.2.10:554/stream1"


def test_defaults() -> None:
    config = VigilConfig()
    assert config.data_dir == Path("data")
    assert config.recording == RecordingConfig(root=None, segment_seconds=60, fragment_seconds=1.0)
    assert config.database == DatabaseConfig(path=None)
    assert config.log == LogConfig(level=LogLevel.INFO, format=LogFormat.TEXT)
    assert config.api.listen == "127.0.0.1:8080"
    assert config.simulator is None
    assert config.streams == []


def test_simulator_defaults() -> None:
    simulator = SimulatorConfig()
    assert simulator.enabled is True
    assert (simulator.cameras, simulator.port, simulator.codec) == (4, 8654, Codec.H264)
    assert (simulator.width, simulator.height, simulator.fps) == (1280, 720, 25)
    assert (simulator.bitrate_kbit, simulator.gop_frames, simulator.file) == (2000, None, None)
    assert simulator.keyframe_interval_frames == 25
    assert SimulatorConfig(fps=30, gop_frames=60).keyframe_interval_frames == 60


def test_stream_defaults() -> None:
    stream = StreamConfig(name="gate", source="test://")
    assert stream.transport is Transport.AUTO
    assert (stream.record, stream.enabled, stream.segment_seconds) == (True, True, None)


def test_models_are_frozen() -> None:
    config = VigilConfig()
    with pytest.raises(ValidationError):
        config.data_dir = Path("/elsewhere")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "data", "location"),
    [
        (RecordingConfig, {"segment_seconds": 1}, ("segment_seconds",)),
        (RecordingConfig, {"segment_seconds": 3601}, ("segment_seconds",)),
        (RecordingConfig, {"fragment_seconds": 0.1}, ("fragment_seconds",)),
        (RecordingConfig, {"fragment_seconds": 10.5}, ("fragment_seconds",)),
        (RecordingConfig, {"segment_seconds": 2, "fragment_seconds": 5}, ()),
        (LogConfig, {"level": "verbose"}, ("level",)),
        (LogConfig, {"format": "xml"}, ("format",)),
        (SimulatorConfig, {"cameras": 0}, ("cameras",)),
        (SimulatorConfig, {"cameras": 1001}, ("cameras",)),
        (SimulatorConfig, {"width": 641}, ("width",)),
        (SimulatorConfig, {"height": 4322}, ("height",)),
        (SimulatorConfig, {"fps": 121}, ("fps",)),
        (SimulatorConfig, {"bitrate_kbit": 49}, ("bitrate_kbit",)),
        (SimulatorConfig, {"gop_frames": 0}, ("gop_frames",)),
        (SimulatorConfig, {"port": 70000}, ("port",)),
        (SimulatorConfig, {"codec": "vp9"}, ("codec",)),
        (StreamConfig, {"name": "-gate", "source": "test://"}, ("name",)),
        (StreamConfig, {"name": "a" * 65, "source": "test://"}, ("name",)),
        (StreamConfig, {"name": "front door", "source": "test://"}, ("name",)),
        (
            StreamConfig,
            {"name": "gate", "source": "test://", "segment_seconds": 1},
            ("segment_seconds",),
        ),
        (StreamConfig, {"name": "gate", "source": "test://", "transport": "tcp"}, ()),
        (StreamConfig, {"name": "gate", "source": "test://", "colour": "red"}, ("colour",)),
        (VigilConfig, {"extra": 1}, ("extra",)),
    ],
)
def test_bad_values_are_rejected(
    model: type[Any], data: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    assert [error["loc"] for error in raised.value.errors()] == [location]


@pytest.mark.parametrize("name", ["gate", "G", "cam_1", "cam-1", "1cam", "a" * 64])
def test_good_stream_names(name: str) -> None:
    assert StreamConfig(name=name, source="test://").name == name


def test_stream_name_error_says_what_is_allowed() -> None:
    with pytest.raises(ValidationError) as raised:
        StreamConfig(name="front door", source="test://")
    assert "letters, digits, '_' and '-'" in str(raised.value)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("localhost:65535", "localhost", 65535),
        ("recorder.example.org:80", "recorder.example.org", 80),
        ("[::1]:8080", "::1", 8080),
        ("[::]:9000", "::", 9000),
    ],
)
def test_api_listen(listen: str, host: str, port: int) -> None:
    api = ApiConfig(listen=listen)
    assert (api.host, api.port) == (host, port)


@pytest.mark.parametrize(
    ("listen", "fragment"),
    [
        ("8080", "missing ':PORT'"),
        (":8080", "missing host"),
        ("127.0.0.1:65536", "port must be a number 0..65535"),
        ("127.0.0.1:http", "port must be a number 0..65535"),
        ("::1:8080", "IPv6 addresses must be in brackets"),
        ("[::1]8080", "closing ']' then ':PORT'"),
        ("[nope]:8080", "is not an IPv6 address"),
        ("999.1.1.1:80", "is not an IPv4 address"),
        ("bad_host!:80", "is not a host name or address"),
    ],
)
def test_api_listen_errors(listen: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ApiConfig(listen=listen)
    assert fragment in str(raised.value)


def test_transport_is_accepted_for_rtsp() -> None:
    stream = StreamConfig(name="gate", source="rtsps://cam/x", transport=Transport.TCP)
    assert stream.transport is Transport.TCP


def test_stream_repr_hides_the_password() -> None:
    stream = StreamConfig(name="gate", source=SECRET_URL)
    config = VigilConfig(streams=[stream])
    for text in (repr(stream), str(stream), repr(config), str(config)):
        assert "secret" not in text
    assert stream.redacted_source() == "rtsp://admin:***@192.0.2.10:554/stream1"
    assert stream.source == SECRET_URL


def test_validation_error_text_hides_the_input() -> None:
    # A stream built from an API request must not log its password through pydantic's text.
    with pytest.raises(ValidationError) as raised:
        StreamConfig(name="gate", source="rtsp://admin:secret@cam:bad/x")
    assert "secret" not in str(raised.value)


def test_redacted_dict() -> None:
    config = VigilConfig(
        streams=[
            StreamConfig(name="gate", source=SECRET_URL),
            StreamConfig(name="yard", source="test://ball"),
        ]
    )
    data = config.redacted_dict()
    assert data["streams"][0]["source"] == "rtsp://admin:***@192.0.2.10:554/stream1"
    assert data["streams"][1]["source"] == "test://ball"
    assert data["data_dir"] == "data"
    assert data["log"] == {"level": "info", "format": "text"}
    assert "secret" not in repr(data)
    assert config.streams[0].source == SECRET_URL  # the model itself is untouched


def test_duplicate_stream_names_ignore_case() -> None:
    with pytest.raises(ValidationError) as raised:
        VigilConfig.model_validate(
            {
                "streams": [
                    {"name": "gate", "source": "test://"},
                    {"name": "yard", "source": "test://"},
                    {"name": "Gate", "source": "test://"},
                ]
            }
        )
    (error,) = raised.value.errors()
    assert "duplicate stream name 'Gate': already used by streams[0]" in error["msg"]
