"""Serving: every stream re-served over RTSP and WebRTC (WHEP), and published into over RTSP
RECORD and WHIP. Viewers are fed from the stream's ingest tee through `vigil.media.relay`; the
sessions they open are listed in `sessions` (pure Python, so the API can read it)."""
