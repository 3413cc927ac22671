"""The HTTP control plane: REST under /api/v1, WebSocket events, metrics, OpenAPI.

The API talks to the managers through `ApiServices`, never to GStreamer.
"""
