"""The sd_notify side: messages on a real datagram socket, the environment, the status line."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops.notify_listener import NotifyListener
from vigil.ops.systemd import Notifier, status_line, watchdog_interval_from_environment


def test_no_notify_socket_means_no_notifier() -> None:
    assert Notifier.from_environment({}) is None
    assert Notifier.from_environment({"NOTIFY_SOCKET": ""}) is None


def test_a_socket_that_is_not_unix_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    assert Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert "not a Unix socket" in caplog.text


def test_messages_arrive_as_systemd_reads_them(notify_socket: NotifyListener) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": notify_socket.address})
    assert notifier is not None
    try:
        assert notifier.ready()
        assert notifier.status("2/3 streams up,\n1 recording")
        assert notifier.watchdog()
        assert notifier.stopping("stopping")
        assert notifier.notify(EXTEND_TIMEOUT_USEC=5_000_000)
        notify_socket.wait_for(lambda: len(notify_socket.received()) == 5, 5, "5 messages")
    finally:
        notifier.close()
    assert [n.fields for n in notify_socket.received()] == [
        {"READY": "1"},
        {"STATUS": "2/3 streams up, 1 recording"},  # one line, whatever the caller passed
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "stopping"},
        {"EXTEND_TIMEOUT_USEC": "5000000"},
    ]


def test_ready_can_carry_the_first_status(notify_socket: NotifyListener) -> None:
    notifier = Notifier(notify_socket.address)
    notifier.ready("0/1 streams up")
    notify_socket.wait_for(lambda: bool(notify_socket.received()), 5, "READY")
    notifier.close()
    assert notify_socket.received()[0].fields == {"READY": "1", "STATUS": "0/1 streams up"}


def test_a_missing_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = str(tmp_path / "notify.sock")
    notifier = Notifier(address)
    with caplog.at_level(logging.INFO, logger="vigil.ops.systemd"):
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.status("x")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert address in warnings[0].getMessage()
        with NotifyListener(address) as listener:  # systemd is back
            assert notifier.watchdog()
            listener.wait_for(lambda: bool(listener.having("WATCHDOG")), 5, "WATCHDOG")
        assert "works again" in caplog.text
    notifier.close()
    assert not notifier.watchdog()  # closed: still no exception


def test_a_full_socket_drops_messages_instead_of_blocking(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as nobody_reads:
        nobody_reads.bind(address)
        notifier = Notifier(address)
        # Blocking sends would hang here once the receive queue is full (the test's timeout).
        results = [notifier.status(f"message {i} " + "x" * 200) for i in range(5000)]
        notifier.close()
    assert results[0]
    assert not all(results)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "2000000"}, 2.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
    ],
)
def test_watchdog_interval_from_environment(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_from_environment(environ) == expected


def test_watchdog_pid_is_compared_with_the_given_pid() -> None:
    environ = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "4242"}
    assert watchdog_interval_from_environment(environ, pid=4242) == 1.0
    assert watchdog_interval_from_environment(environ, pid=4243) is None


@dataclass(frozen=True)
class _Stream:
    name: str
    state: str
    reason: str = ""
    blocked: str | None = None

    @property
    def recording_blocked(self) -> str | None:
        return self.blocked


@pytest.mark.parametrize(
    ("streams", "recording", "expected"),
    [
        ([], set(), "0/0 streams up, 0 recording, no errors"),
        (
            [_Stream("a", "streaming"), _Stream("b", "streaming")],
            {"a"},
            "2/2 streams up, 1 recording, no errors",
        ),
        (
            [_Stream("a", "streaming"), _Stream("b", "starting")],
            {"a", "b"},
            "1/2 streams up, 1 recording, no errors",
        ),
        (
            [
                _Stream("a", "streaming"),
                _Stream("cam2", "reconnecting", "Failed to connect"),
                _Stream("c", "failed", "Unauthorized"),
                _Stream("d", "stopped"),
            ],
            {"a", "cam2", "c"},
            "1/4 streams up, 1 recording, 2 with errors (cam2 reconnecting: Failed to connect, …)",
        ),
        (
            [_Stream("a", "stalled", "no video for 5 s"), _Stream("b", "streaming")],
            {"a", "b"},
            "1/2 streams up, 1 recording, 1 with errors (a stalled: no video for 5 s)",
        ),
        (
            [_Stream("a", "streaming", blocked="no space"), _Stream("b", "streaming")],
            {"a", "b"},
            "2/2 streams up, 1 recording, 1 blocked (no space), no errors",
        ),
    ],
)
def test_status_line(streams: list[_Stream], recording: set[str], expected: str) -> None:
    assert status_line(streams, recording) == expected
