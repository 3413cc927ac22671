"""Loading YAML configuration: values, located errors, duplicate keys, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import (
    ConfigError,
    ConfigIssue,
    LogLevel,
    Transport,
    VigilConfig,
    load_config,
    load_config_text,
)

MINIMAL = """\
recording:
  root: ./data/recordings
  segment_seconds: 60
streams:
  - name: gate
    source: rtsp://user:secret@192.0.2.10:554/stream1
    record: true
"""


def load(text: str) -> VigilConfig:
    return load_config_text(text, source_name="vigil.yaml", env={})


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as raised:
        load(text)
    return raised.value.issues


def only_issue(text: str) -> ConfigIssue:
    (issue,) = issues_of(text)
    return issue


def test_minimal_documented_example_loads() -> None:
    config = load(MINIMAL)
    assert config.recording.root == Path("data/recordings")
    assert config.recording.segment_seconds == 60
    (stream,) = config.streams
    assert stream.name == "gate"
    assert stream.source == "rtsp://user:secret@192.0.2.10:554/stream1"
    assert stream.record is True
    assert stream.transport is Transport.AUTO


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "~\n", "---\n"])
def test_empty_file_is_all_defaults(text: str) -> None:
    assert load(text) == VigilConfig()


def test_full_example_loads() -> None:
    config = load(
        """\
data_dir: /srv/vigil
recording: {segment_seconds: 30, fragment_seconds: 0.5}
database: {path: /var/lib/vigil/vigil.db}
log: {level: debug, format: json}
api: {listen: "[::]:9000"}
simulator: {cameras: 2, codec: h265, width: 640, height: 480, fps: 15, gop_frames: 30}
streams:
  - {name: gate, source: "rtsp://cam/x", transport: tcp, segment_seconds: 10}
  - {name: yard, source: "test://ball", record: false, enabled: false}
"""
    )
    assert config.data_dir == Path("/srv/vigil")
    assert config.log.level is LogLevel.DEBUG
    assert config.api.port == 9000
    assert config.simulator is not None and config.simulator.gop_frames == 30
    assert [s.segment_seconds for s in config.streams] == [10, None]
    assert config.streams[1].enabled is False


@pytest.mark.parametrize(
    ("text", "location", "line", "message"),
    [
        (
            "data_dir: x\nstreems: []\n",
            "streems",
            2,
            "unknown key 'streems' (did you mean 'streams'?); allowed keys: data_dir, recording,",
        ),
        (
            "recording:\n  root: x\n  segmnt_seconds: 5\n",
            "recording.segmnt_seconds",
            3,
            "unknown key 'segmnt_seconds' (did you mean 'segment_seconds'?); "
            "allowed keys: root, segment_seconds, fragment_seconds",
        ),
        (
            "streams:\n  - name: a\n    source: test://\n  - name: b\n    source: test://\n"
            "    recrod: true\n",
            "streams[1].recrod",
            6,
            "unknown key 'recrod' (did you mean 'record'?); allowed keys: name, source, "
            "transport, record, enabled, segment_seconds",
        ),
        (
            "recording:\n  segment_seconds: abc\n",
            "recording.segment_seconds",
            2,
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "recording:\n  segment_seconds: 5000\n",
            "recording.segment_seconds",
            2,
            "Input should be less than or equal to 3600 (got 5000)",
        ),
        (
            "simulator:\n  cameras: 0\n",
            "simulator.cameras",
            2,
            "Input should be greater than or equal to 1 (got 0)",
        ),
        ("log:\n  level: loud\n", "log.level", 2, "'debug', 'info', 'warning' or 'error'"),
        ("recording: 5\n", "recording", 1, "must be a mapping of keys, found a number"),
        ("streams:\n  gate: {}\n", "streams", 1, "must be a list, found a mapping"),
        (
            "streams:\n  - source: test://\n",
            "streams[0].name",
            2,
            "required key 'name' is missing",
        ),
        (
            "recording:\n  segment_seconds: 2\n  fragment_seconds: 5\n",
            "recording.fragment_seconds",
            3,
            "fragment_seconds (5.0) must not exceed segment_seconds (2)",
        ),
        (
            "streams:\n  - name: gate\n    source: test://\n    transport: udp\n",
            "streams[0].transport",
            4,
            "transport applies to rtsp:// and rtsps:// sources only",
        ),
        (
            "recording:\n  fragment_seconds: 3\nstreams:\n  - name: gate\n    source: test://\n"
            "    segment_seconds: 2\n",
            "streams[0].segment_seconds",
            6,
            "segment_seconds (2) must be at least recording.fragment_seconds (3.0)",
        ),
        (
            "streams:\n  - name: gate\n    source: ftp://cam/x\n",
            "streams[0].source",
            3,
            "unsupported source scheme 'ftp'; allowed: rtsp://, rtsps://, file://, test://, v4l2://",
        ),
        (
            "streams:\n  - name: gate\n    source: test://ball?speed=3\n",
            "streams[0].source",
            3,
            "unknown query parameter 'speed' for test:// sources",
        ),
    ],
)
def test_located_errors(text: str, location: str, line: int, message: str) -> None:
    issue = only_issue(text)
    assert (issue.location, issue.line, issue.source_name) == (location, line, "vigil.yaml")
    assert message in issue.message


def test_duplicate_stream_name_points_at_the_second_occurrence() -> None:
    issue = only_issue(
        """\
streams:
  - name: gate
    source: test://
  - name: yard
    source: test://
  - source: test://ball
    name: gate
"""
    )
    assert (issue.location, issue.line) == ("streams[2].name", 7)
    assert "duplicate stream name 'gate': already used by streams[0]" in issue.message


@pytest.mark.parametrize(
    ("text", "location", "line", "first_line"),
    [
        ("data_dir: a\nlog: {}\ndata_dir: b\n", "data_dir", 3, 1),
        (
            "recording:\n  segment_seconds: 10\n  segment_seconds: 20\n",
            "recording.segment_seconds",
            3,
            2,
        ),
        (
            "streams:\n  - name: gate\n    source: test://\n    name: yard\n",
            "streams[0].name",
            4,
            2,
        ),
        ("log: {level: info, level: debug}\n", "log.level", 1, 1),
    ],
)
def test_duplicate_yaml_keys_are_errors(
    text: str, location: str, line: int, first_line: int
) -> None:
    issue = only_issue(text)
    assert (issue.location, issue.line) == (location, line)
    assert f"duplicate key '{location.rsplit('.', 1)[-1].split(']')[-1]}'" in issue.message
    assert f"first on line {first_line}" in issue.message


def test_merge_keys_are_not_duplicates_and_keep_lines() -> None:
    text = """\
x-camera: &camera
  transport: tcp
  record: false
streams:
  - <<: *camera
    name: gate
    source: rtsp://cam/1
    record: true
  - <<: *camera
    name: yard
    source: test://
"""
    # x-camera is not a Vigil key: the one issue must be that, and the merged transport on
    # a test:// stream must be located at the anchor's line.
    issues = issues_of(text)
    assert [(i.location, i.line) for i in issues] == [
        ("x-camera", 1),
        ("streams[1].transport", 2),
    ]


def test_yaml_syntax_error_has_the_line() -> None:
    issue = only_issue("recording:\n  segment_seconds: 60\n  root: [a, b\nlog: {}\n")
    assert issue.line is not None and issue.line >= 3
    assert issue.message.startswith("invalid YAML: ")
    assert issue.location == ""


def test_yaml_tab_indentation_error() -> None:
    issue = only_issue("recording:\n\tsegment_seconds: 60\n")
    assert issue.line == 2
    assert "invalid YAML" in issue.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just words\n", "a string"), ("42\n", "a number")],
)
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    issue = only_issue(text)
    assert issue.line == 1
    assert f"must be a mapping of sections (data_dir, recording, streams, ...), found {kind}" in (
        issue.message
    )


def test_unsafe_tags_are_refused() -> None:
    issue = only_issue("data_dir: !!python/object/apply:os.getcwd []\n")
    assert issue.line == 1
    assert "invalid YAML" in issue.message


def test_error_text_is_one_line_per_issue_sorted_by_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load("log:\n  level: loud\nrecording:\n  segment_seconds: 1\ndata_dir: x\nbogus: 1\n")
    assert str(raised.value).splitlines() == [
        "vigil.yaml:2: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
        "vigil.yaml:4: recording.segment_seconds: "
        "Input should be greater than or equal to 2 (got 1)",
        "vigil.yaml:6: bogus: unknown key 'bogus'; allowed keys: data_dir, recording, storage, "
        "backup, database, ingest, log, tracing, api, rtsp, webrtc, events, detection, "
        "simulator, streams",
    ]


def test_issue_rendering_without_line_or_location() -> None:
    assert str(ConfigIssue("", "cannot read", None, "/etc/vigil.yaml")) == (
        "/etc/vigil.yaml: cannot read"
    )
    assert str(ConfigIssue("log.level", "bad", 3, "a.yaml")) == "a.yaml:3: log.level: bad"


def test_load_config_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(MINIMAL + "  - name: gate\n    source: test://\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert str(raised.value).startswith(f"{path}:8: streams[1].name: duplicate stream name")


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    (issue,) = raised.value.issues
    assert issue.source_name == str(path)
    assert "cannot read the file: No such file or directory" in issue.message


def test_loading_touches_nothing_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "data_dir: ./data\nrecording: {root: ./rec}\ndatabase: {path: ./db/vigil.db}\n"
        "streams: [{name: a, source: 'file:clips/a.mp4'}]\n"
    )
    load_config(path, env={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vigil.yaml"]


SECRET_CASES = [
    # A bad port in an RTSP URL carrying the password.
    "streams:\n  - name: gate\n    source: rtsp://admin:secret@cam:bad/x\n",
    # The URL pasted where a number belongs.
    "recording:\n  segment_seconds: rtsp://admin:secret@cam/x\n",
    # The URL pasted as a key.
    "streams:\n  - name: gate\n    rtsp://admin:secret@cam/x: 1\n    source: test://\n",
    # A YAML syntax error on the line holding the URL.
    "streams:\n  - name: gate\n    source: rtsp://admin:secret@cam/x\n   bad: [\n",
    # A stream whose URL is fine but whose other values are not.
    "streams:\n  - name: bad name\n    source: rtsp://admin:secret@cam/x\n    transport: x\n",
    # A duplicate key whose value is the URL.
    "streams:\n  - name: a\n    source: rtsp://admin:secret@cam/x\n    source: rtsp://b:secret@c/\n",
]


@pytest.mark.parametrize("text", SECRET_CASES)
def test_password_never_in_errors(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(text)
    assert "secret" not in str(raised.value)
    assert "secret" not in repr(raised.value.issues)
    assert raised.value.issues  # and there was something to report


def test_numeric_stream_name_hints_at_quotes() -> None:
    issue = only_issue("streams:\n  - name: 0001\n    source: test://\n")
    assert issue.location == "streams[0].name"
    assert "write the value in quotes" in issue.message
    assert load("streams:\n  - name: '0001'\n    source: test://\n").streams[0].name == "0001"


def test_config_error_survives_pickling() -> None:
    import pickle

    with pytest.raises(ConfigError) as raised:
        load("bogus: 1\n")
    copy = pickle.loads(pickle.dumps(raised.value))
    assert copy.issues == raised.value.issues
    assert str(copy) == str(raised.value)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: \x07\n", 2, "invalid YAML: character #x0007 is not allowed"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document in the stream on line 1, but found"),
        ('k: "open\n', 2, "while scanning a quoted scalar on line 1, found unexpected end"),
    ],
)
def test_other_yaml_errors(text: str, line: int, message: str) -> None:
    issue = only_issue(text)
    assert (issue.location, issue.line) == ("", line)
    assert message in issue.message
