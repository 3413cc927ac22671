"""WHEP and WHIP for real: one Vigil (test pattern, simulator camera, H.265 and publish streams,
host candidates on loopback) and aiortc as the viewer and the publisher, over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.serve.webrtc_client import Publisher, Viewer, local_offer, without_codec
from tests.support.media import free_port
from tests.support.service import running_vigil, until
from vigil.app import Vigil
from vigil.serve.webrtc.sdp import answer_payload_types, h264_formats, parse_offer
from vigil.store.tokens import hash_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VIEWER, OPERATOR = "viewer-token-0123456789", "operator-token-0123456789"


@dataclass
class Served:
    vigil: Vigil
    client: httpx.AsyncClient
    base: Path

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def sessions(self) -> list[dict[str, object]]:
        answer = await self.client.get("/api/v1/sessions", headers=self.auth(OPERATOR))
        assert answer.status_code == 200, answer.text
        return list(answer.json())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    base = tmp_path_factory.mktemp("webrtc")
    port = free_port()
    config = (
        "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
        "api: {tokens: ["
        f"{{name: watcher, role: viewer, sha256: {hash_token(VIEWER)}}}, "
        f"{{name: pusher, role: operator, sha256: {hash_token(OPERATOR)}}}]}}\n"
        "webrtc: {host_addresses: [127.0.0.1], port_min: 40000, port_max: 40999}\n"
        f"simulator: {{cameras: 1, port: {port}, width: 320, height: 240, fps: 10, "
        "bitrate_kbit: 300}\n"
        "streams:\n"
        '  - {name: ball, source: "test://ball?size=320x240&fps=15&gop=15", record: false}\n'
        f'  - {{name: sim, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp, '
        "record: false}\n"
        '  - {name: hevc, source: "test://ball?codec=h265&size=160x120&fps=5", record: false}\n'
        "  - {name: pub, source: publish}\n"
    )
    async with running_vigil(config, base) as vigil:
        assert vigil.api is not None
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            served = Served(vigil, client, base)
            await until(lambda: all(vigil.relays.video(n).live for n in ("ball", "sim", "hevc")),
                        30, "streams did not start")  # fmt: skip
            yield served


async def _frames(viewer: Viewer, more_than: int, timeout: float = 30) -> None:
    await until(lambda: viewer.frames > more_than, timeout,
                f"only {viewer.frames} frames decoded")  # fmt: skip


async def test_whep_viewer_gets_the_stream_and_ends_it(served: Served) -> None:
    viewer = Viewer()
    try:
        await viewer.start(served.client, "/ball/whep", VIEWER)
        response = viewer.response
        assert response is not None and response.status_code == 201, response and response.text
        assert response.headers["content-type"].startswith("application/sdp")
        location, etag = response.headers["location"], response.headers["etag"]
        assert location.startswith("/ball/whep/") and etag
        offered = {f.payload_type for f in h264_formats(parse_offer(viewer.offer).video())}
        assert answer_payload_types(response.text)[0] in offered
        await _frames(viewer, 10)
        assert viewer.sizes == {(320, 240)}

        listed = [s for s in await served.sessions() if s["kind"] == "whep"]
        assert [(s["stream"], s["user"], s["transport"]) for s in listed] == [
            ("ball", "watcher", "webrtc")
        ]

        # Trickle: more candidates are taken, a restart is not, a stale ETag is refused.
        trickle = {"Content-Type": "application/trickle-ice-sdpfrag", **served.auth(VIEWER)}
        ufrag = next(line for line in viewer.offer.splitlines() if "ice-ufrag" in line)
        fragment = f"{ufrag}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" + (
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        )
        answer = await served.client.patch(location, content=fragment,
                                           headers={**trickle, "If-Match": etag})  # fmt: skip
        assert answer.status_code == 204, answer.text
        restart = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n"
        answer = await served.client.patch(location, content=restart, headers=trickle)
        assert answer.status_code == 422 and "ICE restart" in answer.text
        answer = await served.client.patch(location, content=fragment,
                                           headers={**trickle, "If-Match": '"stale"'})  # fmt: skip
        assert answer.status_code == 412

        # The camera goes and comes back: the viewer stays and frames resume.
        for action in ("stop", "start"):
            answer = await served.client.post(f"/api/v1/streams/ball/{action}",
                                              headers=served.auth(OPERATOR))  # fmt: skip
            assert answer.status_code == 200, answer.text
        await until(lambda: served.vigil.relays.video("ball").live, 20)
        await _frames(viewer, viewer.frames + 10)

        answer = await served.client.delete(location, headers=served.auth(VIEWER))
        assert answer.status_code == 200
        assert not [s for s in await served.sessions() if s["kind"] == "whep"]
        assert (
            await served.client.delete(location, headers=served.auth(VIEWER))
        ).status_code == 404
        assert served.vigil.relays.video("ball").consumers == 0  # the fan-out went with it
    finally:
        await viewer.close()


async def test_simulator_stream_plays_and_a_kick_ends_the_session(served: Served) -> None:
    viewers = [Viewer(), Viewer()]
    try:
        for viewer in viewers:
            await viewer.start(served.client, "/sim/whep", VIEWER)
            assert viewer.response is not None and viewer.response.status_code == 201
        for viewer in viewers:
            await _frames(viewer, 5)
            assert viewer.sizes == {(320, 240)}
        assert served.vigil.relays.video("sim").consumers == 1  # payloaded once, fanned out
        listed = [s for s in await served.sessions() if s["stream"] == "sim"]
        assert len(listed) == 2
        answer = await served.client.delete(f"/api/v1/sessions/{listed[0]['id']}",
                                            headers=served.auth(OPERATOR))  # fmt: skip
        assert answer.status_code == 204
        await until(lambda: len(served.vigil.sessions.list(stream="sim")) == 1, 20)
        kept = viewers[1] if str(listed[0]["id"]) in viewers[0].response.headers["location"] \
            else viewers[0]  # fmt: skip
        await _frames(kept, kept.frames + 5)  # the other viewer keeps playing
    finally:
        for viewer in viewers:
            await viewer.close()
        for session in served.vigil.sessions.list(stream="sim"):
            served.vigil.sessions.kick(session.id)


async def test_refusals_name_the_problem(served: Served) -> None:
    client = served.client
    viewer = Viewer()
    offer = await viewer.prepare()
    try:
        sdp = {"Content-Type": "application/sdp"}
        for path in ("/ball/whep", "/pub/whip"):
            assert (await client.post(path, content=offer, headers=sdp)).status_code == 401
            wrong = {**sdp, "Authorization": "Bearer not-a-token"}
            assert (await client.post(path, content=offer, headers=wrong)).status_code == 401
        viewer_on_whip = await client.post("/pub/whip", content=offer,
                                           headers={**sdp, **served.auth(VIEWER)})  # fmt: skip
        assert viewer_on_whip.status_code == 403
        as_viewer = {**sdp, **served.auth(VIEWER)}
        missing = await client.post("/nosuch/whep", content=offer, headers=as_viewer)
        assert missing.status_code == 404
        hevc = await client.post("/hevc/whep", content=offer, headers=as_viewer)
        assert hevc.status_code == 406 and "H.265" in hevc.text and "transcoding" in hevc.text
        vp8_only = without_codec(offer, "H264")
        no_h264 = await client.post("/ball/whep", content=vp8_only, headers=as_viewer)
        assert no_h264.status_code == 406 and "H.264" in no_h264.text
        waiting = await client.post("/pub/whep", content=offer, headers=as_viewer)
        assert waiting.status_code == 503 and "retry-after" in waiting.headers
        as_operator = {**sdp, **served.auth(OPERATOR)}
        camera = await client.post("/ball/whip", content=offer, headers=as_operator)
        assert camera.status_code == 409 and "publish" in camera.text
        plain = {**served.auth(VIEWER), "Content-Type": "text/plain"}
        text = await client.post("/ball/whep", content=offer, headers=plain)
        assert text.status_code == 415
        options = await client.options("/ball/whep")
        assert options.status_code == 204 and options.headers["accept-post"] == "application/sdp"
        assert not served.vigil.sessions.list()
    finally:
        await viewer.close()


async def test_whip_publisher_is_recorded_and_re_served(served: Served) -> None:
    publisher = Publisher(width=320, height=240)
    second = Publisher()
    viewer = Viewer()
    try:
        await publisher.start(served.client, "/pub/whip", OPERATOR)
        response = publisher.response
        assert response is not None and response.status_code == 201, response and response.text
        location = response.headers["location"]
        assert location.startswith("/pub/whip/")
        await until(lambda: served.vigil.relays.video("pub").live, 30, "pub did not start")
        publishing = [s for s in await served.sessions() if s["kind"] == "whip"]
        assert [(s["stream"], s["user"]) for s in publishing] == [("pub", "pusher")]

        await second.start(served.client, "/pub/whip", OPERATOR)
        assert second.response is not None and second.response.status_code == 409
        assert "already has a publisher" in second.response.text

        await viewer.start(served.client, "/pub/whep", VIEWER)
        assert viewer.response is not None and viewer.response.status_code == 201
        await _frames(viewer, 10, timeout=30)
        assert viewer.sizes == {(320, 240)}

        # Re-served over RTSP too (the API token as the Basic password).
        assert served.vigil.rtsp is not None
        rtsp_url = served.vigil.rtsp.url_pattern.replace("<stream>", "pub")
        rtsp_url = rtsp_url.replace("rtsp://", f"rtsp://viewer:{VIEWER}@")
        read = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
             "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", rtsp_url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert read.stdout.strip() == "h264,320,240", read.stderr

        segments: list[dict[str, object]] = []

        async def complete() -> bool:
            answer = await served.client.get("/api/v1/streams/pub/segments",
                                             headers=served.auth(VIEWER))  # fmt: skip
            segments[:] = [s for s in answer.json()["segments"] if s["status"] == "complete"]
            return bool(segments)

        async with asyncio.timeout(40):
            while not await complete():
                await asyncio.sleep(0.5)
        file = served.base / "segment.mp4"
        download = await served.client.get(str(segments[0]["url"]), headers=served.auth(VIEWER))
        file.write_bytes(download.content)
        probe = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0",
             str(file)], capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        codec, width, height, frames = probe.stdout.strip().split(",")
        assert (codec, width, height) == ("h264", "320", "240") and int(frames) > 5, probe.stdout

        answer = await served.client.delete(location, headers=served.auth(OPERATOR))
        assert answer.status_code == 200
        assert not [s for s in await served.sessions() if s["kind"] == "whip"]
    finally:
        for peer in (viewer, publisher, second):
            await peer.close()
        for session in served.vigil.sessions.list():
            served.vigil.sessions.kick(session.id)


async def test_an_offer_without_candidates_connects_through_trickle(served: Served) -> None:
    viewer = Viewer()
    try:
        full = await viewer.prepare()
        bare = "\r\n".join(line for line in full.splitlines()
                           if not line.startswith("a=candidate")) + "\r\n"  # fmt: skip
        headers = {"Content-Type": "application/sdp", **served.auth(VIEWER)}
        response = await served.client.post("/ball/whep", content=bare, headers=headers)
        assert response.status_code == 201, response.text
        candidates = [line for line in full.splitlines() if line.startswith("a=candidate")]
        ice = [line for line in full.splitlines() if line.startswith(("a=ice-ufrag", "a=ice-pwd"))]
        fragment = "\r\n".join([*ice, "m=video 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", *candidates,
                                "a=end-of-candidates"]) + "\r\n"  # fmt: skip
        patched = await served.client.patch(
            response.headers["location"], content=fragment,
            headers={"Content-Type": "application/trickle-ice-sdpfrag", **served.auth(VIEWER),
                     "If-Match": response.headers["etag"]},
        )  # fmt: skip
        assert patched.status_code == 204, patched.text
        from aiortc import RTCSessionDescription

        await viewer.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        await _frames(viewer, 5)
    finally:
        await viewer.close()
        for session in served.vigil.sessions.list(stream="ball"):
            served.vigil.sessions.kick(session.id)


async def test_unused_offer_helper_is_complete() -> None:
    """aiortc's offer carries its candidates (Vigil needs no trickle from it)."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    try:
        assert "a=candidate" in await local_offer(pc)
    finally:
        await pc.close()


async def test_ending_a_session_that_never_connected_leaves_webrtc_working(
    served: Served,
) -> None:
    """A browser leaving a page while its tile still connects: the session ends before ICE ever
    completed (its media is held at the webrtcbin's blocked sink pad). Ending it must not hang
    signalling for everyone else."""
    never, viewer = Viewer(), Viewer()
    try:
        offer = await never.prepare()
        offer = "".join(line for line in offer.splitlines(keepends=True)
                        if not line.startswith("a=candidate"))  # fmt: skip
        posted = await served.client.post(
            "/ball/whep", content=offer,
            headers={"Content-Type": "application/sdp", **served.auth(VIEWER)},
        )  # fmt: skip
        assert posted.status_code == 201, posted.text
        await asyncio.sleep(1)  # media reaches the session's branch and waits there
        ended = await served.client.delete(posted.headers["location"], headers=served.auth(VIEWER))
        assert ended.status_code == 200
        await viewer.start(served.client, "/ball/whep", VIEWER)
        assert viewer.response is not None and viewer.response.status_code == 201
        await _frames(viewer, 5)
    finally:
        for peer in (never, viewer):
            await peer.close()
        for session in served.vigil.sessions.list():
            served.vigil.sessions.kick(session.id)
