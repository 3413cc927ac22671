"""Real RTSP servers (GstRtspServer in this process) shared by the RTSP client tests."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from rtsp_harness import H264_LAUNCH, H265_LAUNCH, PASSWORD, USER, GstServer, gst_server


@pytest.fixture(scope="session")
def h264_server() -> Iterator[GstServer]:
    with gst_server({"/test": H264_LAUNCH}) as server:
        yield server


@pytest.fixture(scope="session")
def h265_server() -> Iterator[GstServer]:
    with gst_server({"/test": H265_LAUNCH}) as server:
        yield server


@pytest.fixture(scope="session")
def basic_server() -> Iterator[GstServer]:
    with gst_server({"/test": H264_LAUNCH}, auth="basic") as server:
        yield server


@pytest.fixture(scope="session")
def digest_server() -> Iterator[GstServer]:
    with gst_server({"/test": H264_LAUNCH}, auth="digest") as server:
        yield server


@pytest.fixture
def userinfo() -> str:
    """The test user's credentials as URL userinfo, percent-encoded."""
    return f"{USER}:{quote(PASSWORD, safe='')}"
