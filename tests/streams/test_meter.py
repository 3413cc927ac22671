"""The flow meter's rates, last-frame age and totals, and the downtime clock, on hand-made
samples (no clock, no GStreamer)."""

from __future__ import annotations

import pytest

from vigil.streams.meter import Downtime, FlowMeter


def test_rates_are_averaged_over_the_window() -> None:
    meter = FlowMeter(window_s=5.0)
    for second in range(11):  # 25 fps, 2500 bytes a frame (500 kbit/s)
        meter.sample(25 * second, 62_500 * second, float(second))
    assert meter.fps() == pytest.approx(25.0)
    assert meter.bitrate_bps() == pytest.approx(500_000.0)
    assert (meter.frames, meter.bytes) == (250, 625_000)


def test_no_rate_before_two_samples() -> None:
    meter = FlowMeter()
    assert (meter.fps(), meter.bitrate_bps(), meter.last_frame_age(0.0)) == (0.0, 0.0, None)
    meter.sample(10, 1000, 1.0)
    assert meter.fps() == 0.0


def test_a_silent_stream_decays_to_zero_and_its_last_frame_ages() -> None:
    meter = FlowMeter(window_s=5.0)
    for second in range(6):
        meter.sample(10 * second, 100 * second, float(second))
    assert meter.last_frame_age(5.0) == 0.0
    for second in range(6, 12):  # the counters stop moving
        meter.sample(50, 500, float(second))
    assert meter.fps() == 0.0
    assert meter.last_frame_age(12.5) == pytest.approx(7.5)


def test_idle_samples_without_a_pipeline_keep_the_totals() -> None:
    meter = FlowMeter(window_s=2.0)
    meter.sample(0, 0, 0.0)
    meter.sample(20, 2000, 1.0)
    for second in range(2, 6):
        meter.idle(float(second))
    assert meter.fps() == 0.0
    assert (meter.frames, meter.bytes) == (20, 2000)


def test_a_new_pipeline_counting_from_zero_adds_to_the_totals() -> None:
    meter = FlowMeter(window_s=5.0)
    meter.sample(100, 10_000, 0.0)
    meter.sample(110, 11_000, 1.0)
    meter.sample(5, 500, 2.0)  # rebuilt: its counters started again
    meter.sample(15, 1500, 3.0)
    assert (meter.frames, meter.bytes) == (125, 12_500)
    assert meter.fps() == pytest.approx(25 / 3)


def test_downtime_counts_only_while_down_including_the_ongoing_stretch() -> None:
    clock = Downtime()
    assert clock.seconds(10.0) == 0.0
    clock.update(True, 10.0)  # starting
    clock.update(True, 11.0)  # still down (reconnecting): no double count
    clock.update(False, 12.0)  # streaming
    assert clock.seconds(20.0) == pytest.approx(2.0)
    clock.update(True, 20.0)  # stalled
    assert clock.seconds(23.5) == pytest.approx(5.5)
    clock.update(False, 25.0)
    assert clock.seconds(100.0) == pytest.approx(7.0)
