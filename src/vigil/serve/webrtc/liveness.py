"""When a WebRTC session must end without the client saying so. Pure: state, since, now.

A client that closes its tab sends no DELETE; a peer whose network went sends nothing at all.
webrtcbin reports the connection state; this decides, from how long a state has lasted, when a
session is dead (its resources are then freed and it leaves the session list).
"""

from __future__ import annotations

from enum import StrEnum


class PeerState(StrEnum):
    """webrtcbin's connection state (RTCPeerConnectionState)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    CLOSED = "closed"


def verdict(
    state: PeerState, since: float, now: float, *, connect_timeout_s: float,
    disconnect_timeout_s: float,
) -> str | None:  # fmt: skip
    """Why a session in `state` since `since` must end at `now`, or None while it may live.

    Failed and closed end at once; a disconnected peer gets `disconnect_timeout_s` to come
    back (ICE consent may recover after a blip); one that never connects gets
    `connect_timeout_s` (the client may have given up between answer and ICE)."""
    held = now - since
    if state in (PeerState.FAILED, PeerState.CLOSED):
        return f"connection {state.value}"
    if state is PeerState.DISCONNECTED and held >= disconnect_timeout_s:
        return f"peer unreachable for {held:.0f} s"
    if state in (PeerState.NEW, PeerState.CONNECTING) and held >= connect_timeout_s:
        return f"not connected within {connect_timeout_s:.0f} s"
    return None
