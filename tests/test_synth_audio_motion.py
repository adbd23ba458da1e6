"""Loudness (BS.1770), ducking, music loops, camera moves and parallax: exact, measurable claims."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from pipelines.audio import (
    DuckSettings,
    MixSettings,
    duck_gain,
    integrated_loudness,
    k_weight,
    k_weighting_coefficients,
    loop_to_length,
    mix_episode,
    normalize_loudness,
)
from pipelines.motion import CameraMove, Overlay, Sprite, prepare_plate, render_move

R = 48000


def sine(freq: float, amp: float, seconds: float, rate: int = R) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_k_weighting_matches_the_standard_and_the_iir() -> None:
    (b1, a1), (b2, a2) = k_weighting_coefficients(48000)
    # the coefficients printed in ITU-R BS.1770-4, table 1 and 2
    assert np.allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    assert np.allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    assert np.allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)
    x = np.random.default_rng(1).normal(0, 0.1, 3000)

    def lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
        y = np.zeros_like(x)
        for n in range(len(x)):
            y[n] = sum(b[k] * x[n - k] for k in range(3) if n - k >= 0) - sum(a[k] * y[n - k] for k in (1, 2) if n - k >= 0)
        return y

    assert np.abs(lfilter(b2, a2, lfilter(b1, a1, x)) - k_weight(x, 48000)).max() < 1e-9


def test_integrated_loudness_of_reference_tones() -> None:
    # a 997 Hz sine at -20 dBFS peak, mono: -23.01 LUFS (the K-filter is +0.69 dB at 1 kHz by design)
    assert integrated_loudness(sine(997, 0.1, 10), R) == pytest.approx(-23.01, abs=0.02)
    assert integrated_loudness(sine(997, 0.1, 5, 44100), 44100) == pytest.approx(-23.01, abs=0.02)
    # absolute gate: appended silence does not pull the loudness down (only straddling blocks do, a little)
    padded = np.concatenate([sine(997, 0.1, 10), np.zeros(R * 10, np.float32)])
    assert integrated_loudness(padded, R) == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(np.zeros(R, np.float32), R) == -70.0
    # relative gate: a tone 30 dB quieter for the same time is gated out
    mixed = np.concatenate([sine(997, 0.1, 10), sine(997, 0.1 / 31.6, 10)])
    assert integrated_loudness(mixed, R) == pytest.approx(-23.01 - 10 * math.log10(2) * 0, abs=0.35)


def test_normalize_loudness_hits_the_target_or_reports_the_ceiling() -> None:
    x = sine(440, 0.05, 6)
    out = normalize_loudness(x, R, -16.0)
    assert integrated_loudness(out.samples, R) == pytest.approx(-16.0, abs=0.05) and not out.limited
    spiky = x.copy()
    spiky[R:R + 2400] *= 15  # a loud burst: the limiter holds the ceiling and the target is still met
    out = normalize_loudness(spiky, R, -14.0, ceiling_db=-1.0)
    assert out.limited and np.abs(out.samples).max() <= 10 ** (-1 / 20) + 1e-6
    assert integrated_loudness(out.samples, R) == pytest.approx(-14.0, abs=0.1)
    # the limiter leaves the quiet part alone (no pumping far from the burst)
    ratio = out.samples[3 * R:4 * R] / np.where(spiky[3 * R:4 * R] == 0, 1, spiky[3 * R:4 * R])
    assert np.ptp(ratio[np.abs(spiky[3 * R:4 * R]) > 0.01]) < 1e-4
    with pytest.raises(Exception, match="out of range"):
        normalize_loudness(x, R, 3.0)


def test_music_ducks_under_speech_and_comes_back() -> None:
    voice = np.zeros(R * 6, np.float32)
    voice[R * 2:R * 4] = sine(300, 0.3, 2)
    g = duck_gain(voice, R, DuckSettings(depth_db=-12, attack_s=0.08, release_s=0.45))
    db = 20 * np.log10(g)
    assert db[: R].max() > -0.01  # before speech (minus the look-ahead): full level
    assert db[int(R * 2.5):int(R * 3.5)].max() == pytest.approx(-12, abs=0.2)  # under speech: ducked
    assert db[int(R * 1.95)] < -3  # look-ahead: already going down as speech starts
    assert db[-R // 4:].min() > -0.5  # recovered at the end
    bed = sine(220, 0.2, 6)
    mixed, report = mix_episode(voice, R, music=bed, settings=MixSettings(target_lufs=-16))
    assert report.lufs == pytest.approx(-16, abs=0.1)
    assert integrated_loudness(mixed, R) == pytest.approx(-16, abs=0.1)


def test_loop_to_length_crossfades_without_gaps() -> None:
    track = sine(220, 0.3, 1.5)
    out = loop_to_length(track, R * 5, R, crossfade_s=0.2)
    assert len(out) == R * 5
    env = np.sqrt(np.convolve(out ** 2, np.ones(480) / 480, mode="valid"))
    assert env[480:-480].min() > 0.1  # no dropout at the joins


def _checker(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(1, w - 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(1, h - 1)).astype(np.uint8)
    img[..., 2] = (((xx // 16 + yy // 16) % 2) * 200).astype(np.uint8)
    return img


def test_pan_is_smooth_and_subpixel_exact() -> None:
    import cv2

    frame = (160, 90)
    move = CameraMove("pan_right", (1.5, 0.4, 0.5), (1.5, 0.6, 0.5), easing="linear")  # never clamped at 1.5
    n = 50
    # exactness: on a float ramp plate (value = plate x), bilinear warping is exact, so every frame
    # pixel must read back the plate coordinate the affine map sends it to (to OpenCV's 1/32 px)
    pw, ph = 241, 136
    ramp = np.tile(np.arange(pw, dtype=np.float32), (ph, 1))
    for i in (0, 7, 24, 49):
        m = move.matrix(i, n, (pw, ph), frame)
        got = cv2.warpAffine(ramp, m, frame, flags=cv2.INTER_LINEAR)
        inv = cv2.invertAffineTransform(m)
        xs = np.arange(frame[0]) * inv[0, 0] + inv[0, 2]
        assert np.abs(got[45, 5:-5] - xs[5:-5]).max() < 1 / 32 + 1e-3
    # smoothness: equal steps frame to frame, measured on the rendered frames
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (ph, pw, 3)).astype(np.uint8), (7, 7), 2)
    frames = [f.copy() for f in render_move(tex, frame, move, n)]
    assert len(frames) == n and frames[0].shape == (90, 160, 3)
    scale = max(frame[0] / pw, frame[1] / ph) * 1.5
    step = (0.6 - 0.4) * pw * scale / (n - 1)
    assert 0.5 < step < 3  # a small per-frame step that only sub-pixel sampling renders smoothly
    window = cv2.createHanningWindow(frame, cv2.CV_64F)
    shifts = [cv2.phaseCorrelate(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64),
                                 cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64), window)[0][0]
              for a, b in zip(frames[5:40], frames[6:41], strict=True)]
    assert np.mean(shifts) == pytest.approx(-step, rel=0.1)  # content moves left as the camera pans right
    assert np.std(shifts) < 0.05  # evenly: no judder


def test_moves_never_show_the_plate_edge_and_static_is_static() -> None:
    frame = (90, 160)
    src = np.full((300, 300, 3), 200, np.uint8)
    for kind in ("push_in", "pull_out", "pan_left", "tilt_up", "handheld", "zoom_out"):
        move = CameraMove.preset(kind, seed=3)
        plate = prepare_plate(src, frame, move)
        for f in render_move(plate, frame, move, 12):
            assert f.min() == 200 and f.max() == 200, kind  # any border fill would show here
    static = CameraMove.preset("static")
    assert static.is_static
    with pytest.raises(Exception, match="unknown camera move"):
        CameraMove.preset("barrel_roll")


def test_parallax_sprite_moves_more_than_the_background() -> None:
    frame = (160, 90)
    move = CameraMove("pan_right", (1.5, 0.4, 0.5), (1.5, 0.6, 0.5), easing="linear")
    plate = prepare_plate(np.full((200, 360, 3), 50, np.uint8), frame, move)
    sprite = np.zeros((10, 10, 4), np.uint8)
    sprite[..., 0] = 255
    sprite[..., 3] = 255
    frames = [f.copy() for f in render_move(plate, frame, move, 20, sprites=(Sprite(sprite, 75, 40, depth=1.3),))]

    def red_x(img: np.ndarray) -> float:
        mask = img[..., 0].astype(float) - 50
        xs = np.arange(img.shape[1])
        return float((mask.sum(axis=0) * xs).sum() / mask.sum())

    bg_travel = (0.6 - 0.4) * plate.shape[1] * max(frame[0] / plate.shape[1], frame[1] / plate.shape[0]) * 1.5
    sprite_travel = red_x(frames[0]) - red_x(frames[-1])
    assert 1.2 * bg_travel < sprite_travel < 2 * bg_travel  # the near layer moves further (1.43x here)


def test_overlay_blends_only_its_boxes() -> None:
    rgba = np.zeros((100, 60, 4), np.uint8)
    rgba[80:90, 10:50] = (255, 255, 255, 255)
    rgba[5:10, 40:55] = (0, 0, 0, 128)
    ov = Overlay.from_rgba(rgba)
    assert len(ov.boxes) == 2
    img = np.full((100, 60, 3), 100, np.uint8)
    ov.apply(img)
    assert (img[80:90, 10:50] == 255).all() and (img[7, 45] == 50).all() and (img[50, 30] == 100).all()


def test_fps_fractions_and_easing() -> None:
    move = CameraMove.preset("push_in")
    views = [move.view(i, 25) for i in range(25)]
    zooms = [v[0] for v in views]
    assert zooms[0] == 1.0 and zooms[-1] == pytest.approx(1.15) and all(b >= a for a, b in zip(zooms, zooms[1:], strict=False))
    # smoothstep starts and ends gently
    assert zooms[1] - zooms[0] < zooms[13] - zooms[12]
    m = move.matrix(0, 25, (200, 200), (100, 100), Fraction(30000, 1001))
    assert m.shape == (2, 3)
