"""The motion gate on synthetic scenes: still with noise, a moving square, a brightness flicker."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.inference.motion import MotionGate
from vigil.inference.types import Image

HEIGHT, WIDTH = 360, 640


def _scene(seed: int = 1) -> Image:
    """A textured, static background: smooth gradients plus a few flat shapes."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = (60 + 80 * xs / WIDTH + 40 * ys / HEIGHT).astype(np.float32)
    image = np.stack([base, base * 0.9, base * 1.1], axis=-1)
    for _ in range(6):
        x, y = int(rng.integers(0, WIDTH - 80)), int(rng.integers(0, HEIGHT - 60))
        image[y : y + 60, x : x + 80] = rng.integers(30, 220, size=3)
    scene: Image = np.clip(image, 0, 255).astype(np.uint8)
    return scene


def _noisy(image: Image, rng: np.random.Generator, sigma: float = 4.0) -> Image:
    noise = rng.normal(0.0, sigma, size=image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def test_first_frame_counts_as_moving() -> None:
    assert MotionGate().update(_scene()).moving


def test_still_noisy_scene_is_not_moving() -> None:
    gate = MotionGate()
    rng = np.random.default_rng(7)
    scene = _scene()
    gate.update(_noisy(scene, rng))
    verdicts = [gate.update(_noisy(scene, rng)) for _ in range(30)]
    assert not any(v.moving for v in verdicts), [v.changed for v in verdicts]


def test_square_moving_across_is_moving() -> None:
    gate = MotionGate()
    rng = np.random.default_rng(3)
    scene = _scene()
    for _ in range(5):
        gate.update(_noisy(scene, rng))
    verdicts = []
    for step in range(12):
        frame = scene.copy()
        x = 40 + step * 45
        frame[150:230, x : x + 50] = (250, 250, 250)  # a small bright object, ~2 % of the frame
        verdicts.append(gate.update(_noisy(frame, rng)))
    assert all(v.moving for v in verdicts), [v.changed for v in verdicts]


@pytest.mark.parametrize("levels", [3, -4, 6])
def test_global_brightness_flicker_is_not_moving(levels: int) -> None:
    gate = MotionGate()
    rng = np.random.default_rng(5)
    scene = _scene()
    gate.update(scene)
    verdicts = []
    for i in range(20):
        shift = levels if i % 2 else 0
        frame = np.clip(scene.astype(np.int16) + shift, 0, 255).astype(np.uint8)
        verdicts.append(gate.update(_noisy(frame, rng, sigma=2.0)))
    assert not any(v.moving for v in verdicts), [v.changed for v in verdicts]


def test_change_of_frame_size_resets_the_background() -> None:
    gate = MotionGate()
    scene = _scene()
    gate.update(scene)
    assert not gate.update(scene).moving
    smaller = np.ascontiguousarray(scene[: HEIGHT // 2, : WIDTH // 2])
    first = gate.update(smaller)
    assert first.moving and first.changed == 1.0
    assert not gate.update(smaller).moving


def test_a_scene_change_is_absorbed_into_the_background() -> None:
    gate = MotionGate()
    gate.update(_scene(seed=1))
    assert gate.update(_scene(seed=2)).moving  # e.g. a car parked: moving at first ...
    verdicts = [gate.update(_scene(seed=2)) for _ in range(40)]
    assert not verdicts[-1].moving  # ... then part of the background


def test_small_frames_are_not_upscaled() -> None:
    gate = MotionGate(width=160)
    tiny = np.full((60, 80, 3), 100, dtype=np.uint8)
    gate.update(tiny)
    moved = tiny.copy()
    moved[20:40, 20:40] = 250
    verdict = gate.update(moved)
    assert verdict.moving and 0.0 < verdict.changed < 0.2
