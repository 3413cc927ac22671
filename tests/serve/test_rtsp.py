"""The RTSP server for real: one Vigil (a test pattern anyone may read, a simulated camera that
is restarted, H.265, and a publish stream), read and published into by ffprobe, ffmpeg,
gst-launch-1.0 and GStreamer's rtspsrc, over TCP and UDP, with Basic and Digest credentials."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.serve.rtsp_client import SDP_H264, Reader, basic, request
from tests.support.faults import SimCamera
from tests.support.media import ffprobe
from tests.support.service import running_vigil, until
from vigil.app import Vigil
from vigil.store.tokens import hash_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VIEWER, OPERATOR = "vgl_rtsp-viewer-token", "vgl_rtsp-operator-token"
ALICE = ("alice", "wonder:land")  # reads cam and pub, publishes pub (a ':' in the password)
READERS = 50
OPERATOR_AUTH = {"Authorization": f"Bearer {OPERATOR}"}
VIEWER_AUTH = {"Authorization": f"Bearer {VIEWER}"}


@dataclass
class Served:
    vigil: Vigil
    api: httpx.AsyncClient
    camera: SimCamera
    base: Path

    def url(self, stream: str, userinfo: str = "") -> str:
        assert self.vigil.rtsp is not None
        pattern = self.vigil.rtsp.url_pattern.replace("<stream>", stream)
        return pattern.replace("rtsp://", f"rtsp://{userinfo}@") if userinfo else pattern

    async def sessions(self, stream: str | None = None) -> list[dict[str, object]]:
        params = {"stream": stream} if stream else {}
        answer = await self.api.get("/api/v1/sessions", params=params, headers=OPERATOR_AUTH)
        assert answer.status_code == 200, answer.text
        return list(answer.json())


@pytest.fixture(scope="module")
def sim_camera() -> Iterator[SimCamera]:
    camera = SimCamera(size="320x240", fps=10, gop=10)
    camera.start()
    try:
        yield camera
    finally:
        camera.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory, sim_camera: SimCamera
) -> AsyncIterator[Served]:
    base = tmp_path_factory.mktemp("rtsp")
    config = (
        "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
        "api: {tokens: ["
        f"{{name: watcher, role: viewer, sha256: {hash_token(VIEWER)}}}, "
        f"{{name: pusher, role: operator, sha256: {hash_token(OPERATOR)}}}]}}\n"
        "rtsp:\n"
        f"  users: [{{name: {ALICE[0]}, password: '{ALICE[1]}', read: [cam, pub, relay], "
        "publish: [pub, relay]}]\n"
        "  anonymous_read: [ball, hevc]\n"
        "streams:\n"
        '  - {name: ball, source: "test://ball?size=320x240&fps=10&gop=10", record: false}\n'
        '  - {name: hevc, source: "test://ball?codec=h265&size=160x120&fps=5&gop=5", '
        "record: false}\n"
        f"  - {{name: cam, source: {sim_camera.url()}, transport: tcp, record: false}}\n"
        "  - {name: pub, source: publish}\n"
        '  - {name: relay, source: "publish:?takeover=true", record: false}\n'
    )
    async with running_vigil(config, base) as vigil:
        assert vigil.api is not None and vigil.rtsp is not None
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as api:
            streams = ("ball", "hevc", "cam")
            up = lambda: all(vigil.relays.video(n).caps is not None for n in streams)  # noqa: E731
            await until(up, 30, "streams not up")
            yield Served(vigil, api, sim_camera, base)


async def _run(*command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=timeout
    )


async def _probe(url: str, transport: str = "tcp") -> dict[str, object]:
    result = await _run(
        "ffprobe", "-v", "error", "-rtsp_transport", transport, "-select_streams", "v:0",
        "-analyzeduration", "1000000",
        "-show_entries", "stream=codec_name,width,height", "-of", "json", url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["streams"][0])


# -- reading ------------------------------------------------------------------------------


async def test_ffprobe_reads_h264_and_h265_over_tcp_and_udp(served: Served) -> None:
    for transport in ("tcp", "udp"):
        assert await _probe(served.url("ball"), transport) == {
            "codec_name": "h264", "width": 320, "height": 240,
        }  # fmt: skip
    assert await _probe(served.url("hevc"), "udp") == {
        "codec_name": "hevc", "width": 160, "height": 120,
    }  # fmt: skip


async def test_gst_launch_rtspsrc_reads_over_tcp_and_udp(served: Served) -> None:
    for protocols in ("tcp", "udp"):
        result = await _run(
            "gst-launch-1.0", "-v", "rtspsrc", f"location={served.url('ball')}",
            f"protocols={protocols}", "!", "rtph264depay", "!", "h264parse", "!",
            "fakesink", "num-buffers=10",
        )  # fmt: skip
        # Ten frames in, then EOS. (rtspsrc may then fail to send its PAUSE: it flushes its own
        # connection while tearing down, a client-side race that changes only the exit code.)
        assert 'Got EOS from element "pipeline0"' in result.stdout, result.stdout[-2000:]
        assert "width=(int)320, height=(int)240" in result.stdout


async def test_unknown_and_idle_streams_are_refused_clearly(served: Served) -> None:
    unknown = await asyncio.to_thread(request, served.url("nope"),
                                      authorization=basic("x", VIEWER))  # fmt: skip
    assert (unknown.status, unknown.reason) == (404, "Not Found: no such stream")
    idle = await asyncio.to_thread(request, served.url("pub"), authorization=basic(*ALICE))
    assert (idle.status, idle.reason) == (503, "Service Unavailable: stream not streaming now")
    result = await _run("ffprobe", "-v", "error", served.url("pub", "alice:wonder%3Aland"))
    assert "503 Service Unavailable: stream not streaming now" in result.stderr


# -- auth ---------------------------------------------------------------------------------


async def test_credentials_basic_digest_and_tokens(served: Served) -> None:
    url = served.url("cam")
    challenge = await asyncio.to_thread(request, url)
    assert challenge.status == 401
    schemes = [value.split(" ", 1)[0] for value in challenge.all("WWW-Authenticate")]
    assert schemes == ["Digest", "Basic"]
    cases = {
        basic(*ALICE): 200, basic("alice", "wrong"): 401, basic("any", VIEWER): 200,
        basic("any", "vgl_not-a-token"): 401,
    }  # fmt: skip
    for authorization, status in cases.items():
        reply = await asyncio.to_thread(request, url, authorization=authorization)
        assert reply.status == status, (authorization, reply)
    # ffprobe answers the Digest challenge: right and wrong passwords.
    assert (await _probe(served.url("cam", "alice:wonder%3Aland")))["codec_name"] == "h264"
    wrong = await _run("ffprobe", "-v", "error", served.url("cam", "alice:nope"))
    assert wrong.returncode != 0 and "401" in wrong.stderr
    # Read-only credentials cannot publish; nobody publishes into a camera stream.
    reply = await asyncio.to_thread(request, served.url("pub"), "ANNOUNCE", body=SDP_H264,
                                    authorization=basic("x", VIEWER))  # fmt: skip
    assert reply.status == 403
    reply = await asyncio.to_thread(request, served.url("cam"), "ANNOUNCE", body=SDP_H264,
                                    authorization=basic("x", OPERATOR))  # fmt: skip
    assert (reply.status, reply.reason) == (405, "Method Not Allowed: not a publish stream")


# -- many readers, camera restart, sessions -------------------------------------------------


async def test_fifty_readers_get_frames_and_survive_a_camera_restart(served: Served) -> None:
    readers = [Reader(served.url("cam", "alice:wonder%3Aland")) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    try:
        await until(lambda: all(r.frames >= 5 for r in readers), 60,
                    "not every reader received frames")  # fmt: skip
        await until(lambda: len(served.vigil.sessions.list(stream="cam")) >= READERS, 20)
        served.camera.stop()
        supervisor_state = lambda: next(  # noqa: E731
            s.state.value for s in served.vigil.streams.statuses() if s.name == "cam"
        ) if served.vigil.streams else ""  # fmt: skip
        await until(lambda: supervisor_state() != "streaming", 30, "camera stop not seen")
        before = [r.frames for r in readers]
        served.camera.start()
        await until(lambda: all(r.frames > b + 5 for r, b in zip(readers, before, strict=True)),
                    60, "frames did not resume for every reader")  # fmt: skip
        for reader in readers:
            reader.poll()
        assert [r.ended for r in readers if r.ended] == []
        assert len(served.vigil.sessions.list(stream="cam")) >= READERS
    finally:
        await asyncio.to_thread(lambda: [r.stop() for r in readers])
    await until(lambda: not served.vigil.sessions.list(stream="cam"), 30, "sessions left over")


async def test_sessions_are_listed_counted_and_kicked(served: Served) -> None:
    tcp, udp = Reader(served.url("ball")), Reader(served.url("ball"), protocols="udp")
    for reader in (tcp, udp):
        reader.start()
    try:
        await until(lambda: tcp.frames > 3 and udp.frames > 3, 30, "readers got no frames")
        listed = await served.sessions("ball")
        assert sorted(s["transport"] for s in listed) == ["tcp", "udp"]
        assert {s["kind"] for s in listed} == {"rtsp-play"}
        assert all(str(s["remote"]).startswith("127.0.0.1:") for s in listed)
        metrics = (await served.api.get("/metrics", headers={
            "Authorization": f"Bearer {VIEWER}"})).text  # fmt: skip
        assert 'vigil_serve_sessions{kind="rtsp-play",stream="ball"} 2.0' in metrics
        assert 'vigil_serve_sessions_opened_total{kind="rtsp-play",stream="ball"}' in metrics

        kicked = next(s for s in listed if s["transport"] == "tcp")
        answer = await served.api.delete(f"/api/v1/sessions/{kicked['id']}", headers=OPERATOR_AUTH)
        assert answer.status_code == 204

        def tcp_ended() -> bool:
            tcp.poll()
            return tcp.ended is not None

        await until(tcp_ended, 20, "the kicked reader was not disconnected")
        assert [s["id"] for s in await served.sessions("ball")] == [
            s["id"] for s in listed if s["id"] != kicked["id"]
        ]
        frames = udp.frames
        await until(lambda: udp.frames > frames + 3, 20, "the other reader stopped")
    finally:
        await asyncio.to_thread(lambda: [r.stop() for r in (tcp, udp)])


# -- publishing ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-g", "25", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def _publish(clip: Path, url: str) -> list[str]:
    return ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
            "-f", "rtsp", "-rtsp_transport", "tcp", url]  # fmt: skip


async def test_ffmpeg_publishes_and_vigil_serves_and_records_it(served: Served, clip: Path) -> None:
    vigil = served.vigil
    publisher = subprocess.Popen(_publish(clip, served.url("pub", "alice:wonder%3Aland")),
                                 stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        await until(lambda: vigil.relays.video("pub").caps is not None, 30,
                    "the published stream did not start")  # fmt: skip
        assert await _probe(served.url("pub", "alice:wonder%3Aland")) == {
            "codec_name": "h264", "width": 320, "height": 240,
        }  # fmt: skip
        second = await _run(*_publish(clip, served.url("pub", "alice:wonder%3Aland")),
                            timeout=30)  # fmt: skip
        assert "403 Forbidden: the stream already has a publisher" in second.stderr
        listed = await served.sessions("pub")
        assert [(s["kind"], s["user"]) for s in listed] == [("rtsp-publish", "alice")]

        async def complete_segment() -> dict[str, object] | None:
            answer = await served.api.get("/api/v1/streams/pub/segments", headers=VIEWER_AUTH)
            if answer.status_code != 200:
                return None
            done = [s for s in answer.json()["segments"] if s["status"] == "complete"]
            return done[0] if done else None

        segment: dict[str, object] | None = None
        async with asyncio.timeout(40):
            while (segment := await complete_segment()) is None:
                await asyncio.sleep(0.5)
        assert segment["codec"] == "h264" and (segment["width"], segment["height"]) == (320, 240)
        file = served.base / "segment.mp4"
        answer = await served.api.get(str(segment["url"]),
                                      headers=VIEWER_AUTH)  # fmt: skip
        file.write_bytes(answer.content)
        probe = await asyncio.to_thread(ffprobe, file)
        assert (probe.codec, probe.width, probe.height) == ("h264", 320, 240)
        assert probe.frames > 10
    finally:
        publisher.terminate()
        publisher.wait(10)
    await until(lambda: not vigil.sessions.list(stream="pub"), 20, "publish session left over")


async def test_a_takeover_stream_takes_the_new_publisher_and_drops_the_old(
    served: Served, clip: Path
) -> None:
    # (ffmpeg answers the Digest challenge rtsp.users bring, so a user, not a token)
    vigil, url = served.vigil, served.url("relay", "alice:wonder%3Aland")
    first = subprocess.Popen(_publish(clip, url), stderr=subprocess.DEVNULL)
    second: subprocess.Popen[bytes] | None = None
    try:
        await until(lambda: vigil.relays.video("relay").caps is not None, 30, "relay not up")
        [old] = await served.sessions("relay")
        second = subprocess.Popen(_publish(clip, url), stderr=subprocess.DEVNULL)
        # The old publisher is disconnected (ffmpeg ends), the new one is the stream's source.
        await until(lambda: first.poll() is not None, 30, "the old publisher was not dropped")
        listed: list[dict[str, object]] = []

        async def new_one_listed() -> bool:
            listed[:] = await served.sessions("relay")
            return [s["kind"] for s in listed] == ["rtsp-publish"] and listed[0]["id"] != old["id"]

        async with asyncio.timeout(30):
            while not await new_one_listed():
                await asyncio.sleep(0.5)
        assert second.poll() is None, "the new publisher was refused"
        assert await _probe(url) == {
            "codec_name": "h264", "width": 320, "height": 240,
        }  # fmt: skip
    finally:
        for process in (first, second):
            if process is not None:
                process.terminate()
                process.wait(10)
