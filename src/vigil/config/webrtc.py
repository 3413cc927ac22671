"""The ``webrtc`` section: WHEP playback and WHIP ingest on the API's HTTP server."""

from __future__ import annotations

from pydantic import Field

from vigil.config.base import BaseConfig


class WebRtcConfig(BaseConfig):
    """WebRTC sessions: ICE servers, interfaces and ports."""

    enabled: bool = Field(default=True, description="Serve WHEP playback and WHIP ingest.")
