"""WebRTC: WHEP playback (payload once per stream, fan out to webrtcbin sessions) and WHIP ingest.

Only `fanout`, `peer`, `whip` and `gateway` import GStreamer; `sdp`, `ice`, `liveness` and
`signalling` are pure, and the API imports nothing else from here.
"""
