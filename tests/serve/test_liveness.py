"""When a session whose peer went silent is ended."""

from __future__ import annotations

import pytest

from vigil.serve.webrtc.liveness import PeerState, verdict

TIMEOUTS = {"connect_timeout_s": 30.0, "disconnect_timeout_s": 10.0}


@pytest.mark.parametrize(
    ("state", "held", "ends"),
    [(PeerState.CONNECTED, 3600, False), (PeerState.FAILED, 0, True), (PeerState.CLOSED, 0, True),
     (PeerState.DISCONNECTED, 9, False), (PeerState.DISCONNECTED, 10, True),
     (PeerState.NEW, 29, False), (PeerState.CONNECTING, 30, True)],
)  # fmt: skip
def test_verdict(state: PeerState, held: float, ends: bool) -> None:
    reason = verdict(state, since=100.0, now=100.0 + held, **TIMEOUTS)
    assert (reason is not None) is ends
